#include "ppl/param_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>

#include "runtime/ops.hpp"

namespace cuvi {

namespace {

constexpr char kMagic[8] = {'C', 'U', 'V', 'I', 'P', 'A', 'R', 'M'};
constexpr uint32_t kVersion = 1;
constexpr uint8_t kF32 = 0, kI64 = 1;

uint64_t fnv1a64(const unsigned char* p, size_t n) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

bool same_storage(const Tensor& a, const Tensor& b) { return a.impl()->storage == b.impl()->storage; }

// A fresh leaf holding c->inverse(value), sharing no memory with value.
Tensor make_leaf(const Tensor& value, const constraints::ConstraintPtr& c) {
  NoGradGuard ng;
  Tensor v = value.to_float().detach();
  Tensor u = c->inverse(v);
  if (same_storage(u, value)) u = u.clone();
  Tensor leaf = u.detach();
  leaf.requires_grad_(true);
  return leaf;
}

// ---- serialisation -----------------------------------------------------------

class Writer {
 public:
  void bytes(const void* p, size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    buf_.insert(buf_.end(), c, c + n);
  }
  void u8(uint8_t v) { buf_.push_back(v); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) buf_.push_back(static_cast<unsigned char>(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) buf_.push_back(static_cast<unsigned char>(v >> (8 * i)));
  }
  void i64(int64_t v) { u64(static_cast<uint64_t>(v)); }
  void f32(float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    u32(b);
  }
  void f64(double v) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    u64(b);
  }
  void str(const std::string& s) {
    CUVI_CHECK(s.size() <= std::numeric_limits<uint32_t>::max(), ValueError,
               "a string of " << s.size() << " bytes is too long to save");
    u32(static_cast<uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  // dtype, ndim, dims, values; the tensor is copied to the host here.
  void tensor(const Tensor& t, const std::string& what) {
    CUVI_CHECK(t.defined(), ValueError, what << " is an undefined tensor");
    Tensor h;
    {
      NoGradGuard ng;
      h = t.detach().to(Device::cpu());
    }
    u8(h.dtype() == DType::kFloat32 ? kF32 : kI64);
    u8(static_cast<uint8_t>(h.dim()));
    for (int64_t d : h.shape()) i64(d);
    const int64_t n = h.numel();
    if (h.dtype() == DType::kFloat32) {
      const float* p = h.data<float>();
      for (int64_t i = 0; i < n; ++i) f32(p[i]);
    } else {
      const int64_t* p = h.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) i64(p[i]);
    }
  }
  std::vector<unsigned char>& buffer() { return buf_; }

 private:
  std::vector<unsigned char> buf_;
};

// A problem with the file's contents.
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class... Args>
[[noreturn]] void bad(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw FormatError(os.str());
}

struct HostTensor {
  DType dtype = DType::kFloat32;
  Shape shape;
  std::vector<float> f;
  std::vector<int64_t> i;
};

class Reader {
 public:
  Reader(const unsigned char* p, size_t n) : p_(p), n_(n) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }
  const unsigned char* take(size_t k, const char* what) {
    if (k > remaining())
      bad("truncated: ", what, " needs ", k, " bytes at offset ", pos_, " but only ", remaining(),
          " remain before the checksum");
    const unsigned char* q = p_ + pos_;
    pos_ += k;
    return q;
  }
  uint8_t u8(const char* what) { return *take(1, what); }
  uint32_t u32(const char* what) {
    const unsigned char* q = take(4, what);
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= static_cast<uint32_t>(q[k]) << (8 * k);
    return v;
  }
  uint64_t u64(const char* what) {
    const unsigned char* q = take(8, what);
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k) v |= static_cast<uint64_t>(q[k]) << (8 * k);
    return v;
  }
  int64_t i64(const char* what) { return static_cast<int64_t>(u64(what)); }
  double f64(const char* what) {
    const uint64_t b = u64(what);
    double v;
    std::memcpy(&v, &b, 8);
    return v;
  }
  std::string str(const char* what) {
    const uint32_t len = u32(what);
    const unsigned char* q = take(len, what);
    return std::string(reinterpret_cast<const char*>(q), len);
  }
  // A count of records that each take at least `min_bytes`, checked against the remaining bytes.
  uint64_t count(const char* what, size_t min_bytes, bool wide) {
    const size_t at = pos_;
    const uint64_t n = wide ? u64(what) : u32(what);
    if (n > remaining() / min_bytes)
      bad("bad ", what, " at offset ", at, ": ", n, " records cannot fit in the ", remaining(), " bytes left");
    return n;
  }
  HostTensor tensor(const std::string& what) {
    HostTensor t;
    const size_t at = pos_;
    const uint8_t dt = u8("a dtype");
    if (dt != kF32 && dt != kI64) bad(what, ": unknown dtype code ", static_cast<int>(dt), " at offset ", at);
    t.dtype = dt == kF32 ? DType::kFloat32 : DType::kInt64;
    const uint8_t nd = u8("a rank");
    if (nd > kMaxDims) bad(what, ": ", static_cast<int>(nd), " dims (at most ", kMaxDims, " allowed)");
    const size_t es = dtype_size(t.dtype);
    uint64_t numel = 1;
    for (uint8_t d = 0; d < nd; ++d) {
      const int64_t s = i64("a dim");
      if (s < 0) bad(what, ": negative dim ", s);
      t.shape.push_back(s);
      if (numel != 0 && static_cast<uint64_t>(s) > (remaining() / es) / numel && s != 0)
        bad("truncated: ", what, " has shape ", shape_str(t.shape), "... which needs more than the ", remaining(),
            " bytes left");
      numel *= static_cast<uint64_t>(s);
    }
    if (numel * es > remaining())
      bad("truncated: ", what, " of shape ", shape_str(t.shape), " needs ", numel * es, " bytes of values at offset ",
          pos_, " but only ", remaining(), " remain");
    const unsigned char* q = take(numel * es, "values");
    if (t.dtype == DType::kFloat32) {
      t.f.resize(numel);
      for (uint64_t k = 0; k < numel; ++k) {
        uint32_t b = 0;
        for (int j = 0; j < 4; ++j) b |= static_cast<uint32_t>(q[4 * k + j]) << (8 * j);
        std::memcpy(&t.f[k], &b, 4);
      }
    } else {
      t.i.resize(numel);
      for (uint64_t k = 0; k < numel; ++k) {
        uint64_t b = 0;
        for (int j = 0; j < 8; ++j) b |= static_cast<uint64_t>(q[8 * k + j]) << (8 * j);
        t.i[k] = static_cast<int64_t>(b);
      }
    }
    return t;
  }

 private:
  const unsigned char* p_;
  size_t n_;
  size_t pos_ = 0;
};

Tensor to_tensor(const HostTensor& h, Device dev) {
  return h.dtype == DType::kFloat32 ? tensor(h.f, h.shape, dev) : tensor_i64(h.i, h.shape, dev);
}

std::string errno_str(int e) { return std::strerror(e); }

// Writes `data` to path atomically (temp file, fsync, rename).
void write_atomic(const std::string& path, const std::vector<unsigned char>& data) {
  const std::string tmp = path + ".tmp." + std::to_string(static_cast<long long>(::getpid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int e = errno;
    CUVI_THROW(IOError, "ParamStore::save: cannot write '" << path << "': cannot create the temporary file '" << tmp
                                                           << "': " << errno_str(e));
  }
  auto fail = [&](const char* step, int e, bool close_fd) {
    if (close_fd) ::close(fd);
    ::unlink(tmp.c_str());
    CUVI_THROW(IOError, "ParamStore::save: cannot write '" << path << "': " << step << " failed: " << errno_str(e));
  };
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("write", errno, true);
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) fail("fsync", errno, true);
  if (::close(fd) != 0) fail("close", errno, false);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename", errno, false);
  // Make the rename itself durable; a failure here does not undo the save.
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

struct ParsedParam {
  std::string name;
  constraints::ConstraintPtr constraint;
  HostTensor value;
};

struct ParsedOpt {
  std::string optimizer;
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, HostTensor>>>> tensors;
  std::map<std::string, std::map<std::string, double>> scalars;
};

struct ParsedFile {
  std::vector<ParsedParam> params;
  bool has_opt = false;
  ParsedOpt opt;
};

ParsedFile parse(const std::vector<unsigned char>& buf) {
  constexpr size_t kMin = sizeof(kMagic) + 4 + 8 + 1 + 8;
  if (buf.size() < sizeof(kMagic) || std::memcmp(buf.data(), kMagic, sizeof(kMagic)) != 0)
    bad("not a cuvi param store file (bad magic)");
  if (buf.size() < kMin) bad("truncated: ", buf.size(), " bytes, a valid file has at least ", kMin);
  Reader r(buf.data(), buf.size() - 8);
  r.take(sizeof(kMagic), "the magic");
  const uint32_t version = r.u32("the version");
  if (version != kVersion) bad("unsupported format version ", version, " (this build reads version ", kVersion, ")");

  ParsedFile f;
  std::set<std::string> seen;
  // Smallest param record: two empty strings, dtype, rank 0 (then 4 bytes of value).
  const uint64_t n = r.count("param count", 4 + 4 + 1 + 1, true);
  for (uint64_t k = 0; k < n; ++k) {
    ParsedParam p;
    p.name = r.str("a param name");
    if (!seen.insert(p.name).second) bad("param '", p.name, "' appears twice");
    const std::string cname = r.str("a constraint name");
    try {
      p.constraint = constraints::from_name(cname);
    } catch (const ValueError&) {
      bad("param '", p.name, "' has an unknown constraint '", cname, "'");
    }
    if (p.constraint->is_discrete()) bad("param '", p.name, "' has the discrete constraint ", cname);
    p.value = r.tensor("param '" + p.name + "'");
    if (p.value.dtype != DType::kFloat32)
      bad("param '", p.name, "' has dtype ", dtype_name(p.value.dtype), " (params are float32)");
    try {
      (void)p.constraint->constrained_shape(p.value.shape);
    } catch (const Error& e) {
      bad("param '", p.name, "': unconstrained shape ", shape_str(p.value.shape), " does not fit constraint ", cname);
    }
    f.params.push_back(std::move(p));
  }

  const uint8_t has_opt = r.u8("the optimizer flag");
  if (has_opt > 1) bad("bad optimizer flag ", static_cast<int>(has_opt), " at offset ", r.pos() - 1);
  f.has_opt = has_opt == 1;
  if (f.has_opt) {
    f.opt.optimizer = r.str("the optimizer name");
    std::set<std::string> tseen;
    const uint64_t nt = r.count("optimizer tensor param count", 4 + 4, true);
    for (uint64_t k = 0; k < nt; ++k) {
      std::string pname = r.str("an optimizer param name");
      if (!tseen.insert(pname).second) bad("optimizer tensors for param '", pname, "' appear twice");
      std::vector<std::pair<std::string, HostTensor>> entries;
      std::set<std::string> kseen;
      const uint64_t ne = r.count("optimizer tensor count", 4 + 1 + 1, false);
      for (uint64_t j = 0; j < ne; ++j) {
        std::string key = r.str("an optimizer tensor key");
        if (!kseen.insert(key).second) bad("optimizer tensor '", key, "' of param '", pname, "' appears twice");
        HostTensor t = r.tensor("optimizer tensor '" + key + "' of param '" + pname + "'");
        entries.emplace_back(std::move(key), std::move(t));
      }
      f.opt.tensors.emplace_back(std::move(pname), std::move(entries));
    }
    const uint64_t ns = r.count("optimizer scalar param count", 4 + 4, true);
    for (uint64_t k = 0; k < ns; ++k) {
      std::string pname = r.str("an optimizer param name");
      if (f.opt.scalars.count(pname)) bad("optimizer scalars for param '", pname, "' appear twice");
      auto& m = f.opt.scalars[pname];
      const uint64_t ne = r.count("optimizer scalar count", 4 + 8, false);
      for (uint64_t j = 0; j < ne; ++j) {
        std::string key = r.str("an optimizer scalar key");
        if (m.count(key)) bad("optimizer scalar '", key, "' of param '", pname, "' appears twice");
        m[key] = r.f64("an optimizer scalar");
      }
    }
  }
  if (r.remaining() != 0)
    bad("corrupt: ", r.remaining(), " unexpected bytes after the last record at offset ", r.pos());

  const size_t body = buf.size() - 8;
  uint64_t stored = 0;
  for (int k = 0; k < 8; ++k) stored |= static_cast<uint64_t>(buf[body + static_cast<size_t>(k)]) << (8 * k);
  const uint64_t actual = fnv1a64(buf.data(), body);
  if (stored != actual) {
    std::ostringstream os;
    os << std::hex << "checksum mismatch (stored 0x" << stored << ", computed 0x" << actual
       << "): the file is corrupt";
    bad(os.str());
  }
  return f;
}

}  // namespace

// ---- ParamStore ----------------------------------------------------------------

const ParamStore::Entry& ParamStore::entry(const std::string& name, const char* what) const {
  auto it = entries_.find(name);
  CUVI_CHECK(it != entries_.end(), ValueError, "ParamStore::" << what << ": no param named '" << name << "'");
  return it->second;
}

Tensor ParamStore::create(const std::string& name, const Tensor& init, const constraints::ConstraintPtr& c) {
  CUVI_CHECK(init.defined(), ValueError, "param '" << name << "': the initial value is an undefined tensor");
  CUVI_CHECK(!c->is_discrete(), ValueError,
             "param '" << name << "': constraint " << c->name() << " is discrete; params need a continuous constraint");
  Tensor leaf = make_leaf(init, c);
  entries_[name] = Entry{leaf, c, next_serial_++};
  order_.push_back(name);
  return leaf;
}

Tensor ParamStore::declare(const std::string& name, const std::function<Tensor()>& init, const Tensor* init_value,
                           const constraints::ConstraintPtr& c_in) {
  const constraints::ConstraintPtr& c = c_in ? c_in : constraints::real;
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    if (init_value) return create(name, *init_value, c);
    CUVI_CHECK(static_cast<bool>(init), ValueError, "param '" << name << "': no initial value");
    return create(name, init(), c);
  }
  const Entry& e = it->second;
  if (init_value) {
    CUVI_CHECK(init_value->defined(), ValueError, "param '" << name << "': the initial value is an undefined tensor");
    const Shape have = e.constraint->constrained_shape(e.leaf.shape());
    CUVI_CHECK(init_value->shape() == have, ValueError,
               "param '" << name << "' has shape " << shape_str(have) << " but is now declared with an init of shape "
                         << shape_str(init_value->shape()));
  }
  CUVI_CHECK(e.constraint->name() == c->name(), ValueError,
             "param '" << name << "' was declared with constraint " << e.constraint->name() << ", now with "
                       << c->name());
  return e.leaf;
}

Tensor ParamStore::param(const std::string& name, const std::function<Tensor()>& init,
                         const constraints::ConstraintPtr& c) {
  const Tensor leaf = declare(name, init, nullptr, c);
  return entries_.at(name).constraint->transform(leaf);
}

Tensor ParamStore::param(const std::string& name, const Tensor& init, const constraints::ConstraintPtr& c) {
  const Tensor leaf = declare(name, nullptr, &init, c);
  return entries_.at(name).constraint->transform(leaf);
}

bool ParamStore::contains(const std::string& name) const { return entries_.count(name) != 0; }

Tensor ParamStore::get(const std::string& name) const {
  const Entry& e = entry(name, "get");
  NoGradGuard ng;
  Tensor v = e.constraint->transform(e.leaf);
  if (same_storage(v, e.leaf)) v = v.clone();
  return v.detach();
}

Tensor ParamStore::unconstrained(const std::string& name) const { return entry(name, "unconstrained").leaf; }

constraints::ConstraintPtr ParamStore::constraint(const std::string& name) const {
  return entry(name, "constraint").constraint;
}

std::vector<std::string> ParamStore::names() const { return order_; }

void ParamStore::set(const std::string& name, const Tensor& value) {
  CUVI_CHECK(value.defined(), ValueError, "ParamStore::set: param '" << name << "': undefined value");
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    create(name, value, constraints::real);
    return;
  }
  it->second.leaf = make_leaf(value, it->second.constraint);
}

void ParamStore::erase(const std::string& name) {
  if (entries_.erase(name) == 0) return;
  order_.erase(std::find(order_.begin(), order_.end(), name));
}

void ParamStore::erase_created_since(uint64_t mark) {
  std::vector<std::string> kept;
  kept.reserve(order_.size());
  for (const std::string& n : order_) {
    auto it = entries_.find(n);
    if (it->second.serial >= mark) entries_.erase(it);
    else kept.push_back(n);
  }
  order_ = std::move(kept);
}

void ParamStore::clear() {
  entries_.clear();
  order_.clear();
}

size_t ParamStore::size() const { return order_.size(); }

void ParamStore::save(const std::string& path, const OptimizerState* opt) const {
  Writer w;
  try {
    w.bytes(kMagic, sizeof(kMagic));
    w.u32(kVersion);
    w.u64(order_.size());
    for (const std::string& name : order_) {
      const Entry& e = entries_.at(name);
      w.str(name);
      w.str(e.constraint->name());
      w.tensor(e.leaf, "param '" + name + "'");
    }
    w.u8(opt ? 1 : 0);
    if (opt) {
      w.str(opt->optimizer);
      w.u64(opt->tensors.size());
      for (const auto& [pname, m] : opt->tensors) {
        w.str(pname);
        w.u32(static_cast<uint32_t>(m.size()));
        for (const auto& [key, t] : m) {
          w.str(key);
          w.tensor(t, "optimizer tensor '" + key + "' of param '" + pname + "'");
        }
      }
      w.u64(opt->scalars.size());
      for (const auto& [pname, m] : opt->scalars) {
        w.str(pname);
        w.u32(static_cast<uint32_t>(m.size()));
        for (const auto& [key, v] : m) {
          w.str(key);
          w.f64(v);
        }
      }
    }
  } catch (const Error& e) {
    CUVI_THROW(IOError, "ParamStore::save: cannot write '" << path << "': " << e.what());
  }
  auto& buf = w.buffer();
  const uint64_t sum = fnv1a64(buf.data(), buf.size());
  w.u64(sum);
  write_atomic(path, buf);
}

void ParamStore::load(const std::string& path, OptimizerState* opt, std::optional<Device> device, bool strict) {
  std::vector<unsigned char> buf;
  {
    std::ifstream in(path, std::ios::binary);
    CUVI_CHECK(in.good(), IOError, "ParamStore::load: cannot open '" << path << "': " << errno_str(errno));
    buf.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    CUVI_CHECK(!in.bad(), IOError, "ParamStore::load: cannot read '" << path << "'");
  }
  ParsedFile f;
  try {
    f = parse(buf);
  } catch (const FormatError& e) {
    CUVI_THROW(IOError, "ParamStore::load: '" << path << "': " << e.what());
  }

  // Mismatches against the store, and the device of each param.
  std::map<std::string, Device> target;
  for (const ParsedParam& p : f.params) {
    auto it = entries_.find(p.name);
    if (it != entries_.end() && strict) {
      const Entry& e = it->second;
      const bool same = e.constraint->name() == p.constraint->name() && e.leaf.shape() == p.value.shape;
      CUVI_CHECK(same, IOError,
                 "ParamStore::load: '" << path << "': param '" << p.name << "' has unconstrained shape "
                                       << shape_str(p.value.shape) << " and constraint " << p.constraint->name()
                                       << " in the file, but shape " << shape_str(e.leaf.shape()) << " and constraint "
                                       << e.constraint->name() << " in the store (strict load)");
    }
    target[p.name] = device ? *device : (it != entries_.end() ? it->second.leaf.device() : default_device());
  }
  auto device_for = [&](const std::string& pname) {
    if (device) return *device;
    auto t = target.find(pname);
    if (t != target.end()) return t->second;
    auto it = entries_.find(pname);
    return it != entries_.end() ? it->second.leaf.device() : default_device();
  };

  // Build every tensor before touching the store.
  std::vector<Entry> fresh;
  fresh.reserve(f.params.size());
  for (const ParsedParam& p : f.params) {
    Tensor leaf = to_tensor(p.value, target.at(p.name));
    leaf.requires_grad_(true);
    fresh.push_back(Entry{leaf, p.constraint});
  }
  OptimizerState new_opt;
  if (opt && f.has_opt) {
    new_opt.optimizer = f.opt.optimizer;
    for (const auto& [pname, entries] : f.opt.tensors) {
      auto& m = new_opt.tensors[pname];
      for (const auto& [key, h] : entries) m[key] = to_tensor(h, device_for(pname));
    }
    new_opt.scalars = f.opt.scalars;
  }

  // Commit.
  for (size_t k = 0; k < f.params.size(); ++k) {
    const std::string& name = f.params[k].name;
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      order_.push_back(name);
      fresh[k].serial = next_serial_++;
    } else {
      fresh[k].serial = it->second.serial;  // replaced, not created
    }
    entries_[name] = std::move(fresh[k]);
  }
  if (opt) *opt = std::move(new_opt);
}

ParamStore& param_store() {
  static ParamStore store;
  return store;
}

}  // namespace cuvi
