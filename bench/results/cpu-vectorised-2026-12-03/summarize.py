import json,glob,statistics as st,sys
d=sys.argv[1]
for th in sys.argv[2:] or ("t1","t2"):
    def load(tag):
        r={}
        for f in sorted(glob.glob(f'{d}/{th}_{tag}_*.json')):
            for b in json.load(open(f))['benchmarks']:
                r.setdefault(b['name'].replace('/manual_time',''),[]).append((b['real_time'],b['time_unit']))
        return r
    b,n=load('base'),load('new')
    print(f"threads {th[1]}: median of {len(next(iter(b.values())))} runs each, interleaved (min-max in brackets)")
    print(f"{'benchmark':40s} {'f1a2735':>22s} {'this':>22s} {'speed-up':>8s}")
    for k in b:
        bv=[x for x,_ in b[k]]; nv=[x for x,_ in n[k]]; u=b[k][0][1]
        print(f"{k:40s} {st.median(bv):9.1f} [{min(bv):.0f}-{max(bv):.0f}] {u} {st.median(nv):9.1f} [{min(nv):.0f}-{max(nv):.0f}] {u} {st.median(bv)/st.median(nv):8.2f}")
    print()
