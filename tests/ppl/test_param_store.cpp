#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "gradcheck.hpp"
#include "ppl/param_store.hpp"

using namespace cuvi;
using namespace cuvi::testing;
namespace C = cuvi::constraints;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed with its contents.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("cuvi_ps_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1)));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }
  // Names in the directory containing ".tmp." (left-over temp files).
  std::vector<std::string> temp_files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_))
      if (e.path().filename().string().find(".tmp.") != std::string::npos) out.push_back(e.path().string());
    return out;
  }

 private:
  fs::path path_;
};

std::vector<unsigned char> read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& p, const std::vector<unsigned char>& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Recomputes the trailing FNV-1a 64 checksum after a deliberate edit, so
// that the edit itself is what load must catch.
void reseal(std::vector<unsigned char>& b) {
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i + 8 < b.size(); ++i) {
    h ^= b[i];
    h *= 1099511628211ull;
  }
  for (int k = 0; k < 8; ++k) b[b.size() - 8 + static_cast<size_t>(k)] = static_cast<unsigned char>(h >> (8 * k));
}

Tensor eye(int64_t n) { return diag_embed(ones({n})); }

Tensor random_cholesky(int64_t n, std::mt19937& g) {
  auto v = random_values(n * n, g, -1.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      if (j > i) v[static_cast<size_t>(i * n + j)] = 0.0f;
      if (j == i) v[static_cast<size_t>(i * n + j)] = 0.5f + std::fabs(v[static_cast<size_t>(i * n + j)]);
    }
  return tensor(v, {n, n});
}

// Everything observable about a store, leaf identities included.
struct Snapshot {
  std::vector<std::string> names;
  std::vector<std::string> constraints;
  std::vector<Shape> shapes;
  std::vector<std::vector<float>> values;
  std::vector<const TensorImpl*> leaves;
  explicit Snapshot(const ParamStore& ps) : names(ps.names()) {
    for (const auto& n : names) {
      Tensor leaf = ps.unconstrained(n);
      constraints.push_back(ps.constraint(n)->name());
      shapes.push_back(leaf.shape());
      values.push_back(leaf.to_vector());
      leaves.push_back(leaf.impl());
    }
  }
  bool operator==(const Snapshot& o) const {
    return names == o.names && constraints == o.constraints && shapes == o.shapes && values == o.values &&
           leaves == o.leaves;
  }
};

// A store with one param of every continuous constraint, and optimizer state.
struct Fixture {
  ParamStore ps;
  OptimizerState opt;
  Fixture() {
    std::mt19937 g(17);
    ps.param("loc", random_tensor({2, 3}, g, -2.0f, 2.0f), C::real);
    ps.param("scale", random_tensor({3}, g, 0.1f, 3.0f), C::positive);
    ps.param("probs", tensor({0.1f, 0.2f, 0.3f, 0.4f}), C::simplex);
    ps.param("L", random_cholesky(3, g), C::lower_cholesky);
    ps.param("z", tensor(0.3f), C::interval(-1.0f, 2.5f));
    ps.param("g", tensor({0.75f, 4.0f}), C::greater_than(0.5f));
    ps.param("sp", tensor({1e-3f}), C::softplus_positive);
    ps.param("u", tensor({0.25f, 0.5f}), C::unit_interval);
    opt.optimizer = "Adam";
    opt.tensors["loc"]["exp_avg"] = random_tensor({2, 3}, g, -1.0f, 1.0f);
    opt.tensors["loc"]["exp_avg_sq"] = random_tensor({2, 3}, g, 0.0f, 1.0f);
    opt.tensors["scale"]["steps"] = tensor_i64({5, 6, -7});
    opt.tensors["z"]["exp_avg"] = tensor(0.125f);
    opt.scalars["loc"]["step"] = 12;
    opt.scalars["loc"]["lr"] = 1e-3;
    opt.scalars["scale"]["step"] = 3;
    opt.scalars["scale"]["weird"] = -0.1234567890123;
  }
};

// ---- in-memory behaviour ---------------------------------------------------------

TEST(ParamStore, CreateGetNamesEraseClear) {
  ParamStore ps;
  int calls = 0;
  Tensor a = ps.param("a", [&] { ++calls; return tensor({1.0f, 2.0f}); }, C::positive);
  EXPECT_EQ(calls, 1);
  expect_close(a.to_vector(), {1.0, 2.0}, 0, 1e-6, "a");
  // Later calls neither evaluate nor use init.
  Tensor a2 = ps.param("a", [&] { ++calls; return tensor({9.0f}); }, C::positive);
  EXPECT_EQ(calls, 1);
  expect_close(a2.to_vector(), {1.0, 2.0}, 0, 1e-6, "a again");
  ps.param("b", tensor(3.0f), C::real);
  ps.param("c", [] { return zeros({2, 2}); });  // real by default
  EXPECT_EQ(ps.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ps.size(), 3u);
  EXPECT_TRUE(ps.contains("b"));
  EXPECT_FALSE(ps.contains("d"));
  EXPECT_EQ(ps.constraint("a")->name(), "positive");
  EXPECT_EQ(ps.constraint("c")->name(), "real");

  Tensor leaf = ps.unconstrained("a");
  EXPECT_TRUE(leaf.is_leaf());
  EXPECT_TRUE(leaf.requires_grad());
  EXPECT_EQ(leaf.dtype(), DType::kFloat32);
  expect_close(leaf.to_vector(), {0.0, std::log(2.0)}, 1e-7, 1e-6, "leaf");
  Tensor got = ps.get("a");
  EXPECT_FALSE(got.requires_grad());
  expect_close(got.to_vector(), {1.0, 2.0}, 0, 1e-6, "get");

  ps.erase("b");
  ps.erase("nope");
  EXPECT_EQ(ps.names(), (std::vector<std::string>{"a", "c"}));
  ps.clear();
  EXPECT_EQ(ps.size(), 0u);
  EXPECT_TRUE(ps.names().empty());
  EXPECT_FALSE(ps.contains("a"));
  expect_error<ValueError>([&] { ps.get("a"); }, {"no param named", "'a'"});
  expect_error<ValueError>([&] { ps.unconstrained("zz"); }, {"no param named", "'zz'"});
  expect_error<ValueError>([&] { ps.constraint("zz"); }, {"no param named"});
}

TEST(ParamStore, ConstrainedValueAndGradientFlowToTheLeaf) {
  ParamStore ps;
  Tensor x = ps.param("s", [] { return tensor({0.5f, 2.0f}); }, C::positive);
  EXPECT_TRUE(x.requires_grad());
  EXPECT_FALSE(x.is_leaf());
  sum(x * x).backward();  // d/du exp(u)^2 = 2 x^2
  expect_close(ps.unconstrained("s").grad().to_vector(), {0.5, 8.0}, 1e-6, 1e-5, "positive grad");
  {
    NoGradGuard ng;
    EXPECT_FALSE(ps.param("s", [] { return Tensor(); }, C::positive).requires_grad());
  }
  // real: the value is the leaf itself.
  Tensor r = ps.param("r", [] { return tensor({1.0f, 2.0f}); });
  sum(r * 3.0f).backward();
  expect_close(ps.unconstrained("r").grad().to_vector(), {3.0, 3.0}, 0, 0, "real grad");
  // Structured constraints: stored unconstrained, returned in their own shape.
  Tensor p = ps.param("p", tensor({0.1f, 0.2f, 0.7f}), C::simplex);
  EXPECT_EQ(ps.unconstrained("p").shape(), (Shape{2}));
  expect_close(p.to_vector(), {0.1, 0.2, 0.7}, 1e-6, 1e-5, "simplex");
  Tensor l = ps.param("l", eye(3) * 2.0f, C::lower_cholesky);
  EXPECT_EQ(ps.unconstrained("l").shape(), (Shape{6}));
  EXPECT_EQ(l.shape(), (Shape{3, 3}));
  sum(l).backward();  // d/du_ii exp(u_ii) = 2, off-diagonal 1
  expect_close(ps.unconstrained("l").grad().to_vector(), {2, 1, 2, 1, 1, 2}, 1e-6, 1e-6, "cholesky grad");
  // int64 init becomes float32.
  ps.param("i", tensor_i64({1, 2}), C::real);
  EXPECT_EQ(ps.unconstrained("i").dtype(), DType::kFloat32);
}

TEST(ParamStore, RedeclarationMismatchesThrowNamingTheParam) {
  ParamStore ps;
  ps.param("w", [] { return ones({3}); }, C::positive);
  expect_error<ValueError>([&] { ps.param("w", [] { return ones({3}); }, C::real); }, {"'w'", "positive", "real"});
  expect_error<ValueError>([&] { ps.param("w", ones({2}), C::positive); }, {"'w'", "[3]", "[2]"});
  expect_error<ValueError>([&] { ps.param("w", ones({3}), C::interval(0.0f, 4.0f)); },
                           {"'w'", "positive", "interval(0, 4)"});
  EXPECT_NO_THROW(ps.param("w", ones({3}), C::positive));
  ps.param("L", eye(3), C::lower_cholesky);
  EXPECT_NO_THROW(ps.param("L", eye(3), C::lower_cholesky));
  expect_error<ValueError>([&] { ps.param("L", eye(2), C::lower_cholesky); }, {"'L'", "[3, 3]", "[2, 2]"});
  expect_error<ValueError>([&] { ps.param("d", [] { return ones({2}); }, C::boolean); }, {"'d'", "discrete"});
  EXPECT_FALSE(ps.contains("d"));
  EXPECT_EQ(ps.names(), (std::vector<std::string>{"w", "L"}));
}

TEST(ParamStore, GetNeverAliasesAndSetKeepsTheConstraint) {
  ParamStore ps;
  Tensor init = tensor({1.0f, 2.0f});
  ps.param("r", init);
  EXPECT_NE(ps.unconstrained("r").data<float>(), init.data<float>());  // the leaf owns its memory
  Tensor g = ps.get("r");
  EXPECT_FALSE(g.requires_grad());
  if (ps.unconstrained("r").device().is_cpu()) {  // a host write stands for the optimizer's in-place update
    ps.unconstrained("r").data<float>()[0] = 7.0f;
    EXPECT_EQ(g.to_vector(), (std::vector<float>{1.0f, 2.0f}));
    EXPECT_EQ(init.to_vector(), (std::vector<float>{1.0f, 2.0f}));
    EXPECT_EQ(ps.get("r").to_vector(), (std::vector<float>{7.0f, 2.0f}));
  }

  ps.param("q", [] { return tensor({1.0f}); }, C::positive);
  ps.param("t", [] { return tensor({1.0f}); });
  ps.set("q", tensor({4.0f}));
  EXPECT_EQ(ps.constraint("q")->name(), "positive");
  expect_close(ps.get("q").to_vector(), {4.0}, 0, 1e-6, "set");
  expect_close(ps.unconstrained("q").to_vector(), {std::log(4.0)}, 0, 1e-6, "set leaf");
  EXPECT_TRUE(ps.unconstrained("q").requires_grad());
  ps.set("new", tensor({5.0f}));
  EXPECT_EQ(ps.constraint("new")->name(), "real");
  EXPECT_EQ(ps.names(), (std::vector<std::string>{"r", "q", "t", "new"}));
}

TEST(ParamStore, GlobalStoreIsOnePerProcess) {
  EXPECT_EQ(&param_store(), &param_store());
  param_store().clear();
  param_store().param("global_x", tensor({1.0f}));
  EXPECT_TRUE(param_store().contains("global_x"));
  param_store().clear();
}

// ---- save / load -----------------------------------------------------------------

TEST(ParamStoreFile, RoundTripRestoresValuesConstraintsNamesAndOptimizerState) {
  TempDir dir;
  Fixture f;
  const std::string path = dir.file("store.bin");
  f.ps.save(path, &f.opt);
  EXPECT_TRUE(dir.temp_files().empty());

  ParamStore back;
  OptimizerState opt;
  back.load(path, &opt);
  EXPECT_EQ(back.names(), f.ps.names());
  for (const auto& n : f.ps.names()) {
    EXPECT_EQ(back.constraint(n)->name(), f.ps.constraint(n)->name()) << n;
    Tensor leaf = back.unconstrained(n);
    EXPECT_EQ(leaf.shape(), f.ps.unconstrained(n).shape()) << n;
    EXPECT_EQ(leaf.to_vector(), f.ps.unconstrained(n).to_vector()) << n;  // bit for bit
    EXPECT_TRUE(leaf.requires_grad() && leaf.is_leaf()) << n;
    EXPECT_EQ(back.get(n).to_vector(), f.ps.get(n).to_vector()) << n;
    EXPECT_EQ(leaf.device(), default_device());
  }
  EXPECT_EQ(back.constraint("z")->name(), "interval(-1, 2.5)");
  EXPECT_EQ(back.unconstrained("z").dim(), 0);

  EXPECT_EQ(opt.optimizer, "Adam");
  EXPECT_EQ(opt.scalars, f.opt.scalars);
  ASSERT_EQ(opt.tensors.size(), f.opt.tensors.size());
  for (const auto& [pname, m] : f.opt.tensors) {
    ASSERT_EQ(opt.tensors.count(pname), 1u) << pname;
    ASSERT_EQ(opt.tensors[pname].size(), m.size()) << pname;
    for (const auto& [key, t] : m) {
      const Tensor& got = opt.tensors[pname][key];
      ASSERT_TRUE(got.defined()) << pname << "." << key;
      EXPECT_EQ(got.shape(), t.shape());
      EXPECT_EQ(got.dtype(), t.dtype());
      if (t.dtype() == DType::kFloat32) EXPECT_EQ(got.to_vector(), t.to_vector());
      else EXPECT_EQ(got.to_vector_i64(), t.to_vector_i64());
    }
  }

  // Saving the loaded store gives the same bytes.
  const std::string again = dir.file("again.bin");
  back.save(again, &opt);
  EXPECT_EQ(read_bytes(again), read_bytes(path));
}

TEST(ParamStoreFile, LoadMergesIntoTheStore) {
  TempDir dir;
  Fixture f;
  const std::string path = dir.file("store.bin");
  f.ps.save(path);

  ParamStore ps;
  ps.param("other", tensor({1.0f}));
  ps.param("scale", tensor({9.0f, 9.0f, 9.0f}), C::positive);  // same shape and constraint: replaced
  OptimizerState opt = f.opt;                                  // file has no optimizer section: cleared
  ps.load(path, &opt, Device::cpu());
  std::vector<std::string> want = {"other", "scale"};
  for (const auto& n : f.ps.names())
    if (n != "scale") want.push_back(n);
  EXPECT_EQ(ps.names(), want);
  EXPECT_EQ(ps.unconstrained("scale").to_vector(), f.ps.unconstrained("scale").to_vector());
  EXPECT_EQ(ps.get("other").to_vector(), (std::vector<float>{1.0f}));
  EXPECT_TRUE(opt.optimizer.empty());
  EXPECT_TRUE(opt.tensors.empty());
  EXPECT_TRUE(opt.scalars.empty());

  // Not strict: a mismatched param is replaced with the file's shape and constraint.
  ParamStore loose;
  loose.param("scale", tensor({1.0f}), C::real);
  loose.load(path, nullptr, std::nullopt, /*strict=*/false);
  EXPECT_EQ(loose.constraint("scale")->name(), "positive");
  EXPECT_EQ(loose.unconstrained("scale").shape(), (Shape{3}));
}

class CorruptFile : public ::testing::Test {
 protected:
  void SetUp() override {
    fixture_.ps.save(good_, &fixture_.opt);
    bytes_ = read_bytes(good_);
    ASSERT_GT(bytes_.size(), 100u);
    store_.param("keep", tensor({1.0f, 2.0f}), C::positive);
    store_.param("L", eye(2), C::lower_cholesky);
    sentinel_.optimizer = "Sentinel";
    sentinel_.scalars["keep"]["step"] = 42;
  }
  // Loading `b` must throw IOError naming the file and `fragments`, leaving store_ and the state untouched.
  void expect_rejected(const std::vector<unsigned char>& b, std::initializer_list<const char*> fragments,
                       const std::string& what) {
    write_bytes(bad_, b);
    const Snapshot before(store_);
    OptimizerState st = sentinel_;
    bool threw = false;
    try {
      store_.load(bad_, &st);
    } catch (const IOError& e) {
      threw = true;
      const std::string msg = e.what();
      EXPECT_NE(msg.find(bad_), std::string::npos) << what << ": " << msg;
      for (const char* fr : fragments)
        EXPECT_NE(msg.find(fr), std::string::npos) << what << ": " << msg << " lacks " << fr;
    }
    EXPECT_TRUE(threw) << what << ": accepted";
    EXPECT_TRUE(Snapshot(store_) == before) << what << ": store changed";
    EXPECT_EQ(st.optimizer, "Sentinel") << what;
    EXPECT_EQ(st.scalars, sentinel_.scalars) << what;
    EXPECT_TRUE(st.tensors.empty()) << what;
  }
  size_t find(const std::string& s) const {
    auto it = std::search(bytes_.begin(), bytes_.end(), s.begin(), s.end());
    EXPECT_NE(it, bytes_.end()) << s;
    return static_cast<size_t>(it - bytes_.begin());
  }

  TempDir dir_;
  std::string good_ = dir_.file("good.bin"), bad_ = dir_.file("bad.bin");
  Fixture fixture_;
  std::vector<unsigned char> bytes_;
  ParamStore store_;
  OptimizerState sentinel_;
};

TEST_F(CorruptFile, TruncatedAtAnyOffset) {
  const size_t n = bytes_.size();
  for (size_t cut : {size_t{0}, size_t{3}, size_t{8}, size_t{12}, size_t{19}, size_t{20}, size_t{30}, n / 3, n / 2,
                     n - 30, n - 9, n - 8, n - 1}) {
    std::vector<unsigned char> b(bytes_.begin(), bytes_.begin() + static_cast<long>(cut));
    expect_rejected(b, {}, "cut at " + std::to_string(cut));
  }
  // Cut anywhere, then resealed: the structure itself must catch it.
  for (size_t cut = 30; cut + 8 < n; cut += 37) {
    std::vector<unsigned char> b(bytes_.begin(), bytes_.begin() + static_cast<long>(cut));
    b.insert(b.end(), 8, 0);
    reseal(b);
    expect_rejected(b, {}, "resealed cut at " + std::to_string(cut));
  }
}

TEST_F(CorruptFile, EverySingleFlippedByte) {
  for (size_t i = 0; i < bytes_.size(); ++i) {
    auto b = bytes_;
    b[i] ^= 0x5A;
    expect_rejected(b, {}, "byte " + std::to_string(i));
  }
}

TEST_F(CorruptFile, WrongMagic) {
  auto b = bytes_;
  b[0] = 'X';
  reseal(b);
  expect_rejected(b, {"magic"}, "magic");
  expect_rejected(std::vector<unsigned char>{'h', 'e', 'l', 'l', 'o'}, {"magic"}, "text");
}

TEST_F(CorruptFile, WrongVersion) {
  auto b = bytes_;
  b[8] = 2;
  reseal(b);
  expect_rejected(b, {"version 2"}, "version");
}

TEST_F(CorruptFile, UnknownConstraintName) {
  auto b = bytes_;
  const size_t at = find("positive");  // the constraint of "scale"
  b[at + 7] = 'f';
  reseal(b);
  expect_rejected(b, {"unknown constraint", "positivf", "'scale'"}, "constraint");
}

TEST_F(CorruptFile, BadTensorHeaders) {
  // Layout: magic 8, version 4, count 8, then "loc": name (4 + 3), constraint "real" (4 + 4), dtype, ndim.
  const size_t dtype_at = 8 + 4 + 8 + 4 + 3 + 4 + 4;
  ASSERT_EQ(bytes_[dtype_at + 1], 2);  // "loc" is 2-D
  auto b = bytes_;
  b[dtype_at + 1] = 9;
  reseal(b);
  expect_rejected(b, {"9 dims"}, "rank");
  b = bytes_;
  b[dtype_at] = 7;
  reseal(b);
  expect_rejected(b, {"dtype"}, "dtype");
  b = bytes_;
  b[dtype_at] = 1;  // int64 params are not allowed
  reseal(b);
  expect_rejected(b, {"'loc'"}, "int64 param");
  b = bytes_;
  b[dtype_at + 2 + 7] = 0x80;  // first dim negative
  reseal(b);
  expect_rejected(b, {"negative"}, "negative dim");
  b = bytes_;
  b[dtype_at + 2] = 200;  // first dim too large for the file
  reseal(b);
  expect_rejected(b, {"truncated"}, "big dim");
  b = bytes_;
  b[12 + 5] = 1;  // a param count of 2^40
  reseal(b);
  expect_rejected(b, {"param count"}, "count");
}

TEST_F(CorruptFile, TrailingBytes) {
  auto b = bytes_;
  b.insert(b.end() - 8, 3, 0);
  reseal(b);
  expect_rejected(b, {"unexpected bytes"}, "trailing");
}

TEST_F(CorruptFile, MismatchAgainstTheStoreInStrictMode) {
  // The file holds "scale" (positive, [3]) and "loc" (real, [2, 3]).
  store_.param("scale", tensor({1.0f, 2.0f}), C::positive);
  expect_rejected(bytes_, {"'scale'", "[3]", "[2]", "strict"}, "shape");
  store_.erase("scale");
  store_.param("loc", tensor(std::vector<float>(6, 1.0f), {2, 3}), C::positive);
  expect_rejected(bytes_, {"'loc'", "real", "positive"}, "constraint");
}

TEST_F(CorruptFile, MissingFile) {
  const Snapshot before(store_);
  expect_error<IOError>([&] { store_.load(dir_.file("absent.bin")); }, {"cannot open", "absent.bin"});
  EXPECT_TRUE(Snapshot(store_) == before);
}

TEST(ParamStoreFile, FailedSavesLeaveNoTempFileAndKeepTheOldFile) {
  TempDir dir;
  Fixture f;
  // A directory that does not exist.
  const std::string nowhere = dir.file("no_such_dir") + "/store.bin";
  expect_error<IOError>([&] { f.ps.save(nowhere); }, {nowhere.c_str()});
  EXPECT_FALSE(fs::exists(dir.path() / "no_such_dir"));

  // The target is a directory: the rename fails after the temp file was written.
  const std::string adir = dir.file("adir");
  fs::create_directory(adir);
  expect_error<IOError>([&] { f.ps.save(adir); }, {adir.c_str(), "rename"});
  EXPECT_TRUE(dir.temp_files().empty());

  // An old file survives a failed save (the temp path is blocked by a directory).
  const std::string path = dir.file("store.bin");
  ParamStore small;
  small.param("a", tensor({1.0f}));
  small.save(path);
  const auto old_bytes = read_bytes(path);
  const std::string blocker = path + ".tmp." + std::to_string(::getpid());
  fs::create_directory(blocker);
  expect_error<IOError>([&] { f.ps.save(path, &f.opt); }, {path.c_str()});
  EXPECT_EQ(read_bytes(path), old_bytes);
  EXPECT_TRUE(fs::is_directory(blocker));  // not ours to remove
  fs::remove(blocker);

  // Serialisation errors happen before any file is touched.
  OptimizerState broken;
  broken.optimizer = "Adam";
  broken.tensors["a"]["exp_avg"] = Tensor();
  expect_error<IOError>([&] { f.ps.save(path, &broken); }, {path.c_str(), "undefined"});
  EXPECT_EQ(read_bytes(path), old_bytes);
  EXPECT_TRUE(dir.temp_files().empty());

  // And a good save still replaces it.
  f.ps.save(path, &f.opt);
  ParamStore back;
  back.load(path);
  EXPECT_EQ(back.names(), f.ps.names());
  EXPECT_TRUE(dir.temp_files().empty());
}

TEST(ParamStoreFile, CudaDevicePlacement) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  TempDir dir;
  Fixture f;
  const std::string path = dir.file("store.bin");
  f.ps.save(path, &f.opt);
  // An explicit device.
  ParamStore a;
  OptimizerState st;
  a.load(path, &st, Device::cuda());
  for (const auto& n : a.names()) {
    EXPECT_TRUE(a.unconstrained(n).device().is_cuda()) << n;
    EXPECT_EQ(a.unconstrained(n).to_vector(), f.ps.unconstrained(n).to_vector()) << n;
  }
  EXPECT_TRUE(st.tensors["loc"]["exp_avg"].device().is_cuda());
  // By default: where the existing param of that name lives, else the default device.
  ParamStore b;
  b.param("loc", zeros({2, 3}, Device::cuda()));
  b.load(path, &st);
  EXPECT_TRUE(b.unconstrained("loc").device().is_cuda());
  EXPECT_TRUE(b.unconstrained("scale").device() == default_device());
  EXPECT_TRUE(st.tensors["loc"]["exp_avg"].device().is_cuda());
  EXPECT_TRUE(st.tensors["scale"]["steps"].device() == default_device());
  // Saving device params gives the same bytes as saving the host ones.
  a.save(dir.file("from_cuda.bin"), &f.opt);
  EXPECT_EQ(read_bytes(dir.file("from_cuda.bin")), read_bytes(path));
  // Gradients flow to a device leaf.
  Tensor v = a.param("scale", [] { return Tensor(); }, C::positive);
  sum(v).backward();
  EXPECT_TRUE(a.unconstrained("scale").grad().device().is_cuda());
}

}  // namespace
