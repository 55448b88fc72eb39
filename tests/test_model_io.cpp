// safetensors reading and writing (round trips, every corruption the reader must reject) and model
// checkpoints in PyTorch layout.
#include <cstring>
#include <filesystem>
#include <fstream>

#include "helpers.hpp"
#include "model/checkpoint.hpp"

using namespace ddpm;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path dir;
  TempDir() {
    dir = fs::temp_directory_path() / ("ddpm_test_io_" + std::to_string(test::fresh_seed()));
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A safetensors file from a header text and a data section (the length prefix written for it).
std::string safetensors_bytes(const std::string& header, const std::string& data, uint64_t len_override = 0) {
  uint64_t n = len_override ? len_override : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint8_t(n >> (8 * i)));
  return out + header + data;
}

void require_same(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  REQUIRE(a.dtype() == b.dtype());
  REQUIRE(std::memcmp(a.raw(), b.raw(), size_t(a.numel()) * dtype_size(a.dtype())) == 0);
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, order, dtypes, shapes, bytes and metadata", "[model][safetensors]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  TempDir tmp;
  Tensor f = Tensor::randn({3, 5, 7}, gen);
  Tensor bf = Tensor::randn({4, 3}, gen).to(DType::BF16);
  Tensor ints = Tensor::from_ints({-3, 0, 7, 1LL << 40, -(1LL << 50)}, {5});
  Tensor i32t = Tensor::from_ints({1, -2, 3, 2147483647}, {2, 2}).to(DType::I32);
  Tensor scalar = Tensor::from_floats({2.5f}, {});
  Tensor empty = Tensor::zeros({0, 3});
  std::vector<std::pair<std::string, Tensor>> ts = {
      {"z.first", f}, {"a.bf16", bf}, {"scalar", scalar}, {"empty", empty}, {"i64", ints}, {"i32", i32t}};
  std::map<std::string, std::string> meta = {{"format", "test"}, {"note", "ünïcode and \"quotes\""}};
  std::string path = tmp.file("rt.safetensors");
  save_safetensors(path, ts, meta);
  CHECK_FALSE(fs::exists(path + ".tmp"));
  // The data section starts 8-byte aligned (header padded).
  std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[size_t(i)]);
  CHECK(n % 8 == 0);

  SafeTensors back = load_safetensors(path);
  CHECK(back.metadata == meta);
  CHECK(back.path == path);
  REQUIRE(back.tensors.size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    CHECK(back.tensors[i].first == ts[i].first);  // written in the given order, read in file order
    require_same(back.tensors[i].second, ts[i].second);
    require_same(back.at(ts[i].first), ts[i].second);
  }
  CHECK(back.has("scalar"));
  CHECK_FALSE(back.has("missing"));
  CHECK_THROWS_WITH(back.at("missing"), Contains(path) && Contains("missing"));

  // The in-memory parser reads the same bytes the same way.
  SafeTensors mem = parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "in memory");
  REQUIRE(mem.tensors.size() == ts.size());
  for (size_t i = 0; i < ts.size(); ++i) require_same(mem.tensors[i].second, ts[i].second);

  // Saving again over the file replaces it atomically.
  save_safetensors(path, {{"only", scalar}});
  CHECK(load_safetensors(path).tensors.size() == 1);
  CHECK(load_safetensors(path).metadata.empty());
}

TEST_CASE("safetensors reads F64 as f32", "[model][safetensors]") {
  TempDir tmp;
  std::string path = tmp.file("f64.safetensors");
  double vals[3] = {1.0 / 3.0, -2.5e10, 7.0};
  std::string data(reinterpret_cast<const char*>(vals), sizeof(vals));
  write_bytes(path, safetensors_bytes(R"({"x":{"dtype":"F64","shape":[3],"data_offsets":[0,24]}})", data));
  Tensor x = load_safetensors(path).at("x");
  REQUIRE(x.dtype() == DType::F32);
  std::vector<float> v = x.to_floats();
  CHECK(v == std::vector<float>{float(vals[0]), float(vals[1]), float(vals[2])});
}

TEST_CASE("safetensors rejects every malformed file with the file name and the problem", "[model][safetensors]") {
  TempDir tmp;
  std::string path = tmp.file("bad.safetensors");
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  const std::string eight(8, '\x01'), twelve(12, '\x01'), sixteen(16, '\x01');
  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  };
  std::vector<Case> cases = {
      {"shorter than 8 bytes", "\x05\x00\x00", "shorter than the 8-byte"},
      {"empty file", "", "shorter than the 8-byte"},
      {"header length beyond the file", safetensors_bytes("{}", "", 1000), "runs past the end"},
      {"header length near 2^64", safetensors_bytes("{}", "", ~uint64_t(0)), "runs past the end"},
      {"invalid JSON", safetensors_bytes(R"({"x": {"dtype": )", ""), "not valid JSON"},
      {"not UTF-8 JSON", safetensors_bytes("{\"\xff\xfe\":1}", ""), "not valid JSON"},
      {"header not an object", safetensors_bytes("[1, 2]", ""), "not a JSON object"},
      {"unknown dtype", safetensors_bytes(R"({"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", "abcd"),
       "unknown dtype"},
      {"dtype not a string", safetensors_bytes(R"({"x":{"dtype":3,"shape":[2],"data_offsets":[0,8]}})", eight),
       "unknown dtype"},
      {"missing field", safetensors_bytes(R"({"x":{"dtype":"F32","shape":[2]}})", eight), "exactly dtype"},
      {"extra field", safetensors_bytes("{\"x\":{" + f32x2 + R"(,"data_offsets":[0,8],"y":1}})", eight),
       "exactly dtype"},
      {"entry not an object", safetensors_bytes(R"({"x":[1,2,3]})", ""), "exactly dtype"},
      {"negative dimension", safetensors_bytes(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
       "non-negative integer"},
      {"fractional dimension", safetensors_bytes(R"({"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight),
       "non-negative integer"},
      {"shape not an array", safetensors_bytes(R"({"x":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", eight),
       "shape is not an array"},
      {"shape overflows", safetensors_bytes(
           R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", eight),
       "overflows"},
      {"shape and offsets disagree", safetensors_bytes("{\"x\":{" + f32x2 + R"(,"data_offsets":[0,12]}})", twelve),
       "needs 2 elements"},
      {"offsets out of bounds", safetensors_bytes("{\"x\":{" + f32x2 + R"(,"data_offsets":[8,16]}})", eight),
       "outside the 8-byte data section"},
      {"offsets reversed", safetensors_bytes("{\"x\":{" + f32x2 + R"(,"data_offsets":[8,0]}})", eight), "outside"},
      {"offsets not a pair", safetensors_bytes("{\"x\":{" + f32x2 + R"(,"data_offsets":[0]}})", eight),
       "data_offsets must be"},
      {"overlapping tensors",
       safetensors_bytes("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 + R"(,"data_offsets":[4,12]}})",
                         twelve),
       "(overlap)"},
      {"gap between tensors",
       safetensors_bytes("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"b":{)" + f32x2 + R"(,"data_offsets":[12,20]}})",
                         std::string(20, '\x01')),
       "(gap)"},
      {"bytes not covered", safetensors_bytes("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]}})", sixteen),
       "cover 8 of the 16"},
      {"duplicate tensor name",
       safetensors_bytes("{\"a\":{" + f32x2 + R"(,"data_offsets":[0,8]},"a":{)" + f32x2 + R"(,"data_offsets":[8,16]}})",
                         sixteen),
       "duplicate key 'a'"},
      {"duplicate field", safetensors_bytes("{\"a\":{" + f32x2 + R"(,"shape":[2],"data_offsets":[0,8]}})", eight),
       "duplicate key 'shape'"},
      {"metadata not strings", safetensors_bytes(R"({"__metadata__":{"k":1}})", ""), "metadata 'k' is not a string"},
      {"metadata not an object", safetensors_bytes(R"({"__metadata__":"k"})", ""), "__metadata__ is not an object"},
      {"nested too deep", safetensors_bytes(R"({"a":{"shape":[[[1]]]}})", ""), "nests deeper"},
      {"empty name", safetensors_bytes("{\"\":{" + f32x2 + R"(,"data_offsets":[0,8]}})", eight), "empty name"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    write_bytes(path, c.bytes);
    CHECK_THROWS_WITH(load_safetensors(path), Contains(path) && Contains(c.message));
    CHECK_THROWS_WITH(parse_safetensors(reinterpret_cast<const uint8_t*>(c.bytes.data()), c.bytes.size(), "mem"),
                      Contains("mem") && Contains(c.message));
  }
  CHECK_THROWS_WITH(load_safetensors(tmp.file("does_not_exist")), Contains("cannot open"));
  CHECK_THROWS_WITH(load_safetensors(tmp.dir.string()), Contains(tmp.dir.string()));  // a directory
}

TEST_CASE("a truncated safetensors file is rejected at every length", "[model][safetensors]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  TempDir tmp;
  std::string good = tmp.file("good.safetensors"), cut = tmp.file("cut.safetensors");
  save_safetensors(good, {{"a", Tensor::randn({3, 4}, gen)}, {"b", Tensor::randn({5}, gen)}}, {{"k", "v"}});
  std::string bytes = read_bytes(good);
  for (size_t len = 0; len < bytes.size(); len += 3) {
    CAPTURE(len);
    write_bytes(cut, bytes.substr(0, len));
    CHECK_THROWS_AS(load_safetensors(cut), Error);
  }
}

TEST_CASE("save_safetensors rejects bad input and leaves no temporary file", "[model][safetensors]") {
  TempDir tmp;
  Tensor x = Tensor::zeros({2});
  std::string path = tmp.file("x.safetensors");
  CHECK_THROWS_WITH(save_safetensors(path, {{"a", x}, {"a", x}}), Contains("duplicate tensor name 'a'"));
  CHECK_THROWS_WITH(save_safetensors(path, {{"__metadata__", x}}), Contains("bad tensor name"));
  CHECK_THROWS_WITH(save_safetensors(path, {{"", x}}), Contains("bad tensor name"));
  CHECK_THROWS_WITH(save_safetensors(path, {{"u", Tensor()}}), Contains("undefined"));
  CHECK_THROWS_WITH(save_safetensors(tmp.file("no/such/dir/x.safetensors"), {{"a", x}}), Contains("cannot create"));
  CHECK_THROWS_WITH(save_safetensors(path, {{"a", x}}, {{"data", "folder:caf\xe9"}}),
                    Contains("metadata 'data' is not valid UTF-8"));
  CHECK_THROWS_WITH(save_safetensors(path, {{"caf\xe9", x}}), Contains("not valid UTF-8"));
  fs::create_directory(tmp.file("folder.safetensors"));  // the rename would replace what is not a file
  CHECK_THROWS_WITH(save_safetensors(tmp.file("folder.safetensors"), {{"a", x}}), Contains("not a regular file"));
  CHECK(fs::is_directory(tmp.file("folder.safetensors")));
  CHECK_FALSE(fs::exists(path));
  CHECK_FALSE(fs::exists(path + ".tmp"));
}

// ---- checkpoints ----

namespace {

UNetConfig small_config(int64_t classes = 3) {
  UNetConfig c;
  c.in_channels = 2;
  c.out_channels = 3;
  c.base_channels = 4;
  c.time_dim = 8;
  c.num_classes = classes;
  return c;
}

}  // namespace

TEST_CASE("checkpoint save -> load gives the same weights and outputs", "[model][checkpoint]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  TempDir tmp;
  UNet model(small_config(), gen);
  std::string path = tmp.file("ckpt.safetensors");
  save_model(path, model, {{"image_size", "8"}, {"format", "ignored: the config's keys win"}});

  SafeTensors f = load_safetensors(path);
  CHECK(f.metadata.at("format") == "ddpm-checkpoint");
  CHECK(f.metadata.at("image_size") == "8");
  CHECK(f.metadata.at("base_channels") == "4");
  // Conv weights are stored OIHW: element [o][i][kh][kw] of the file is [o][kh][kw][i] of ours.
  auto named = model.named_parameters();
  const Tensor& ours = named[0].second;  // inc.double_conv.0.weight [4, 3, 3, 2]
  REQUIRE(named[0].first == "inc.double_conv.0.weight");
  Tensor theirs = f.at("inc.double_conv.0.weight");
  REQUIRE(theirs.shape() == Shape{4, 2, 3, 3});
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t kh = 0; kh < 3; ++kh)
        for (int64_t kw = 0; kw < 3; ++kw)
          REQUIRE(theirs.data<float>()[((o * 2 + i) * 3 + kh) * 3 + kw] ==
                  ours.data<float>()[((o * 3 + kh) * 3 + kw) * 2 + i]);

  std::unique_ptr<UNet> back = load_model(path, Device::CPU);
  CHECK(back->config().base_channels == 4);
  CHECK(back->config().num_classes == 3);
  auto back_named = back->named_parameters();
  REQUIRE(back_named.size() == named.size());
  for (size_t i = 0; i < named.size(); ++i) {
    CHECK(back_named[i].first == named[i].first);
    require_same(back_named[i].second.detach(), named[i].second.detach());
  }
  Tensor x = Tensor::randn({2, 8, 8, 2}, gen);
  Tensor t = Tensor::from_ints({5, 900}, {2}), y = Tensor::from_ints({0, 2}, {2});
  NoGradGuard ng;
  require_same(back->forward(x, t, y), model.forward(x, t, y));
}

TEST_CASE("parameter lists round-trip through PyTorch layout under a prefix", "[model][checkpoint]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  TempDir tmp;
  UNet model(small_config(0), gen);
  std::vector<Tensor> values;
  for (const Tensor& p : model.parameters()) values.push_back(Tensor::randn(p.shape(), gen));
  auto named = to_pytorch_layout(model, model.parameters());
  auto moments = to_pytorch_layout(model, values, "ema.");
  named.insert(named.end(), moments.begin(), moments.end());
  std::string path = tmp.file("two.safetensors");
  save_safetensors(path, named, config_metadata(model.config()));

  std::vector<Tensor> back;
  for (const Tensor& p : model.parameters()) back.push_back(Tensor::zeros(p.shape()));
  from_pytorch_layout(model, load_safetensors(path), back, "ema.");
  for (size_t i = 0; i < values.size(); ++i) require_same(back[i], values[i]);
  CHECK(load_model(path, Device::CPU)->parameter_count() == model.parameter_count());  // "ema." copies are allowed
  CHECK_THROWS_WITH(to_pytorch_layout(model, {values[0]}), Contains("values for"));
}

TEST_CASE("load_model reads a bare PyTorch state_dict, inferring the widths", "[model][checkpoint]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  TempDir tmp;
  UNetConfig c = small_config(5);
  UNet model(c, gen);
  std::string path = tmp.file("state_dict.safetensors");
  save_safetensors(path, to_pytorch_layout(model, model.parameters()));  // no metadata
  std::unique_ptr<UNet> back = load_model(path, Device::CPU);
  const UNetConfig& b = back->config();
  CHECK(b.in_channels == c.in_channels);
  CHECK(b.out_channels == c.out_channels);
  CHECK(b.base_channels == c.base_channels);
  CHECK(b.time_dim == c.time_dim);
  CHECK(b.num_classes == c.num_classes);
  CHECK(back->parameter_count() == model.parameter_count());
}

TEST_CASE("load_model rejects files for another model with clear errors", "[model][checkpoint]") {
  Generator gen = test::fresh_generator();
  CAPTURE(gen.seed());
  TempDir tmp;
  UNet model(small_config(), gen);
  auto tensors = to_pytorch_layout(model, model.parameters());
  auto meta = config_metadata(model.config());
  std::string path = tmp.file("bad.safetensors");
  auto save_and_expect = [&](const std::vector<std::pair<std::string, Tensor>>& ts,
                             const std::map<std::string, std::string>& m, const std::string& message) {
    save_safetensors(path, ts, m);
    CHECK_THROWS_WITH(load_model(path, Device::CPU), Contains(path) && Contains(message));
  };
  {
    auto ts = tensors;
    ts.erase(ts.begin() + 3);
    save_and_expect(ts, meta, "missing tensor '" + tensors[3].first + "'");
  }
  {
    auto ts = tensors;
    ts[0].second = Tensor::zeros({4, 2, 3, 1});
    save_and_expect(ts, meta, "has shape [4, 2, 3, 1], the model expects [4, 2, 3, 3]");
  }
  {
    auto ts = tensors;
    std::vector<float> v = ts[5].second.to_floats();
    v[v.size() / 2] = NAN;  // one weight of a diverged run
    ts[5].second = Tensor::from_floats(v, ts[5].second.shape());
    save_and_expect(ts, meta, "'" + tensors[5].first + "' holds NaN");
  }
  {
    auto ts = tensors;
    ts[1].second = Tensor::from_ints({1, 2, 3, 4}, {4});
    save_and_expect(ts, meta, "expected f32");
  }
  {
    auto ts = tensors;
    ts.emplace_back("sa7.ln.weight", Tensor::zeros({4}));
    save_and_expect(ts, meta, "'sa7.ln.weight' is not a parameter");
  }
  {
    auto m = meta;
    m["num_classes"] = "0";  // label_emb.weight is then a stray tensor
    save_and_expect(tensors, m, "'label_emb.weight' is not a parameter");
  }
  {
    auto m = meta;
    m["base_channels"] = "8";
    save_and_expect(tensors, m, "the model expects");
  }
  {
    auto m = meta;
    m["time_dim"] = "eight";
    save_and_expect(tensors, m, "metadata 'time_dim' = 'eight' is not an integer");
  }
  {
    auto m = meta;
    m.erase("heads");
    save_and_expect(tensors, m, "metadata has no 'heads'");
  }
  {
    auto m = meta;
    m["format"] = "ddpm-reference";
    save_and_expect(tensors, m, "expected 'ddpm-checkpoint'");
  }
}
