// Data loaders: small files in each format written to a temp folder and read back exactly, then
// each kind of corruption, which must throw ddpm::Error naming the file and the problem.
#include <filesystem>
#include <fstream>

#include <stb/stb_image_write.h>  // the implementation is compiled into diffusion/image_io.cpp

#include "diffusion/data.hpp"
#include "diffusion/image_io.hpp"
#include "diffusion_helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;
namespace fs = std::filesystem;

TEST_CASE("Fashion-MNIST: IDX gz files, padded 28 -> 32 with the background", "[data][idx]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  TempDir dir;
  FashionFiles f = write_fashion(dir, 5, gen);
  Dataset d = load_dataset("fashion-mnist:" + dir.path.string(), 32);
  REQUIRE(d.count() == 5);
  CHECK(d.size == 32);
  CHECK(d.channels == 1);
  CHECK(d.num_classes() == 10);
  CHECK(d.class_names[9] == "Ankle boot");
  for (int64_t i = 0; i < 5; ++i) {
    CHECK(d.labels[size_t(i)] == f.labels[size_t(i)]);
    for (int64_t y = 0; y < 32; ++y)
      for (int64_t x = 0; x < 32; ++x) {
        const bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        const uint8_t want = inside ? f.images[size_t((i * 28 + y - 2) * 28 + x - 2)] : 0;
        REQUIRE(int(d.pixels[size_t((i * 32 + y) * 32 + x)]) == int(want));
      }
  }
  // Batches are f32 in [-1, 1]: byte b -> b / 127.5 - 1, the padding exactly -1.
  Batch b = d.batch({4, 0}, Device::CPU);
  REQUIRE(b.images.shape() == Shape{2, 32, 32, 1});
  CHECK(b.labels.to_ints() == std::vector<int64_t>{f.labels[4], f.labels[0]});
  std::vector<float> px = b.images.to_floats();
  CHECK(px[0] == -1.0f);
  CHECK(px[size_t(2 * 32 + 2)] == Approx(f.images[size_t(4 * 784)] / 127.5 - 1).margin(1e-6));
  CHECK_THROWS_WITH(d.batch({5}, Device::CPU), Catch::Contains("out of range"));
  CHECK_THROWS_AS(d.batch({}, Device::CPU), Error);

  // Another model size resizes; plain (not gzipped) IDX files read too.
  Dataset small = load_dataset("fashion-mnist:" + dir.path.string(), 16);
  CHECK(small.size == 16);
  CHECK(small.pixels.size() == size_t(5 * 16 * 16));
  write_file(dir / "plain.idx", idx_bytes({5}, f.labels));
  CHECK(read_idx(dir / "plain.idx").data == f.labels);
}

TEST_CASE("Fashion-MNIST: each corruption is reported with the file and the problem", "[data][idx][errors]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  TempDir dir;
  const std::string spec = "fashion-mnist:" + dir.path.string();
  const std::string images = dir / "train-images-idx3-ubyte.gz", labels = dir / "train-labels-idx1-ubyte.gz";

  // The apt hint only where the package would put the files.
  CHECK_THROWS_WITH(load_dataset(spec, 32),
                    Catch::Contains("train-images-idx3-ubyte.gz not found") && !Catch::Contains("apt install"));
  if (!fs::exists(kFashionMnistDir))
    CHECK_THROWS_WITH(load_dataset("fashion-mnist", 32), Catch::Contains("apt install dataset-fashion-mnist"));
  FashionFiles f = write_fashion(dir, 4, gen);
  CHECK_THROWS_WITH(load_dataset(spec, 30), Catch::Contains("multiple of 8"));
  CHECK_THROWS_WITH(load_dataset(spec, 0), Catch::Contains("multiple of 8"));

  // A cut gzip stream.
  std::vector<uint8_t> gz = read_file(images);
  write_file(images, std::vector<uint8_t>(gz.begin(), gz.begin() + long(gz.size() / 2)));
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains(images) && Catch::Contains("truncated"));
  // Fewer pixels than the header promises, and more.
  write_gz(images, idx_bytes({4, 28, 28}, std::vector<uint8_t>(f.images.begin(), f.images.end() - 1)));
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains(images) && Catch::Contains("truncated"));
  std::vector<uint8_t> more = f.images;
  more.push_back(0);
  write_gz(images, idx_bytes({4, 28, 28}, more));
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains("1 bytes beyond"));
  // Wrong magic: not IDX at all, a non-byte element type, labels where images belong.
  std::vector<uint8_t> bad = idx_bytes({4, 28, 28}, f.images);
  bad[0] = 0x1f;
  write_gz(images, bad);
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains(images) && Catch::Contains("not an IDX file"));
  bad[0] = 0;
  bad[2] = 0x0D;
  write_gz(images, bad);
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains("element type"));
  write_gz(images, idx_bytes({4}, f.labels));
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains("expected images"));
  // Counts that disagree, and a label out of range.
  write_gz(images, idx_bytes({4, 28, 28}, f.images));
  write_gz(labels, idx_bytes({3}, std::vector<uint8_t>(f.labels.begin(), f.labels.end() - 1)));
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains("4 images") && Catch::Contains("3 labels"));
  std::vector<uint8_t> wrong_label = f.labels;
  wrong_label[2] = 10;
  write_gz(labels, idx_bytes({4}, wrong_label));
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains(labels) && Catch::Contains("label 10"));

  CHECK_THROWS_WITH(load_dataset("mnist", 32), Catch::Contains("unknown data set"));
}

TEST_CASE("parse_idx from memory checks every header field", "[data][idx][errors]") {
  const std::vector<uint8_t> ok = idx_bytes({2, 3}, {1, 2, 3, 4, 5, 6});
  IdxArray a = parse_idx(ok.data(), ok.size(), "mem");
  CHECK(a.dims == std::vector<int64_t>{2, 3});
  CHECK(a.data == std::vector<uint8_t>{1, 2, 3, 4, 5, 6});
  CHECK_THROWS_WITH(parse_idx(ok.data(), 3, "mem"), Catch::Contains("mem") && Catch::Contains("truncated"));
  CHECK_THROWS_WITH(parse_idx(ok.data(), 9, "mem"), Catch::Contains("header"));
  std::vector<uint8_t> zero_dims{0, 0, 8, 0};
  CHECK_THROWS_WITH(parse_idx(zero_dims.data(), zero_dims.size(), "mem"), Catch::Contains("dimensions"));
  // Sizes whose product overflows 64 bits must not wrap around into a small, "valid" size.
  std::vector<uint8_t> huge = idx_bytes({0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 16}, {});
  CHECK_THROWS_WITH(parse_idx(huge.data(), huge.size(), "mem"), Catch::Contains("implausible"));
  std::vector<uint8_t> empty = idx_bytes({0, 5}, {});
  CHECK(parse_idx(empty.data(), empty.size(), "mem").data.empty());
}

TEST_CASE("CIFAR-10 binary batches: CHW records to HWC images", "[data][cifar]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  TempDir dir;
  std::vector<std::vector<uint8_t>> batches;
  for (int k : {1, 2}) {
    std::vector<uint8_t> bytes = random_bytes(size_t((k + 1) * 3073), gen);
    for (int r = 0; r < k + 1; ++r) bytes[size_t(r * 3073)] = uint8_t(bytes[size_t(r * 3073)] % 10);
    write_file(dir / ("data_batch_" + std::to_string(k) + ".bin"), bytes);
    batches.push_back(bytes);
  }
  write_file(dir / "test_batch.bin", random_bytes(3073, gen));  // not training data: ignored
  Dataset d = load_dataset("cifar10:" + dir.path.string(), 32);
  REQUIRE(d.count() == 5);
  CHECK(d.channels == 3);
  CHECK(d.class_names[0] == "airplane");
  int64_t i = 0;
  for (const auto& bytes : batches)
    for (size_t r = 0; r < bytes.size() / 3073; ++r, ++i) {
      const uint8_t* rec = &bytes[r * 3073];
      CHECK(d.labels[size_t(i)] == rec[0]);
      for (int64_t y = 0; y < 32; ++y)
        for (int64_t x = 0; x < 32; ++x)
          for (int64_t c = 0; c < 3; ++c)
            REQUIRE(d.pixels[size_t(((i * 32 + y) * 32 + x) * 3 + c)] == rec[1 + c * 1024 + y * 32 + x]);
    }
  CHECK(load_dataset("cifar10:" + dir.path.string(), 64).size == 64);  // the seed's upscaling
}

TEST_CASE("CIFAR-10: corrupt batches are reported", "[data][cifar][errors]") {
  Generator gen = fresh_generator();
  TempDir dir;
  const std::string spec = "cifar10:" + dir.path.string(), file = dir / "data_batch_1.bin";
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains("no data_batch"));
  CHECK_THROWS_WITH(load_dataset("cifar10", 32), Catch::Contains("needs a folder"));
  CHECK_THROWS_WITH(load_dataset("cifar10:" + (dir / "nope"), 32), Catch::Contains("not a folder"));
  std::vector<uint8_t> bytes = random_bytes(2 * 3073, gen);
  bytes[0] = 3;
  bytes[3073] = 10;
  write_file(file, bytes);
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains(file) && Catch::Contains("label 10"));
  bytes.resize(bytes.size() - 7);
  write_file(file, bytes);
  CHECK_THROWS_WITH(load_dataset(spec, 32), Catch::Contains(file) && Catch::Contains("truncated"));
}

TEST_CASE("image folders: sorted class folders, center crop, RGB", "[data][folder]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  TempDir dir;
  fs::create_directories(dir.path / "b_cat");
  fs::create_directories(dir.path / "a_dog");
  Image wide(12, 8, 3);
  wide.pixels = random_bytes(wide.pixels.size(), gen);
  write_png(dir / "a_dog/wide.png", wide);
  Image grey(8, 8, 1);
  grey.pixels = random_bytes(grey.pixels.size(), gen);
  write_png(dir / "b_cat/grey.PNG", grey);
  REQUIRE(stbi_write_jpg((dir / "b_cat/photo.jpg").c_str(), 20, 30, 3, std::vector<uint8_t>(20 * 30 * 3, 90).data(), 95));
  write_file(dir / "b_cat/notes.txt", {'h', 'i'});  // not an image: ignored

  Dataset d = load_dataset("folder:" + dir.path.string(), 8);
  REQUIRE(d.count() == 3);
  CHECK(d.class_names == std::vector<std::string>{"a_dog", "b_cat"});
  CHECK(d.labels == std::vector<int64_t>{0, 1, 1});
  CHECK(d.channels == 3);
  for (int64_t y = 0; y < 8; ++y)
    for (int64_t x = 0; x < 8; ++x)
      for (int64_t c = 0; c < 3; ++c) {
        REQUIRE(d.pixels[size_t((y * 8 + x) * 3 + c)] == wide.pixels[size_t((y * 12 + x + 2) * 3 + c)]);  // crop
        REQUIRE(d.pixels[size_t(((64 + y * 8) + x) * 3 + c)] == grey.pixels[size_t(y * 8 + x)]);  // grey -> RGB
        REQUIRE(std::abs(int(d.pixels[size_t(((128 + y * 8) + x) * 3 + c)]) - 90) <= 3);  // JPEG, shrunk
      }
  Dataset big = load_dataset("folder:" + dir.path.string(), 16);
  CHECK(big.pixels.size() == size_t(3 * 16 * 16 * 3));
}

TEST_CASE("image folders: bad layouts and undecodable files are reported", "[data][folder][errors]") {
  TempDir dir;
  const std::string spec = "folder:" + dir.path.string();
  CHECK_THROWS_WITH(load_dataset(spec, 8), Catch::Contains("no class subfolders"));
  fs::create_directories(dir.path / "empty");
  CHECK_THROWS_WITH(load_dataset(spec, 8), Catch::Contains("empty") && Catch::Contains("no PNG or JPEG"));
  write_file(dir / "empty/broken.png", {0x89, 'P', 'N', 'G', 1, 2, 3});
  CHECK_THROWS_WITH(load_dataset(spec, 8), Catch::Contains("broken.png") && Catch::Contains("cannot decode"));
  CHECK_THROWS_WITH(load_dataset("folder", 8), Catch::Contains("needs a folder"));
}

TEST_CASE("image I/O: byte mapping, grids, PNG round trip, drawing", "[data][image]") {
  Generator gen = fresh_generator();
  CAPTURE(gen.seed());
  CHECK(to_byte(-1.0f) == 0);
  CHECK(to_byte(1.0f) == 255);
  CHECK(to_byte(-7.0f) == 0);
  CHECK(to_byte(3.0f) == 255);
  for (int b = 0; b < 256; ++b) REQUIRE(to_byte(from_byte(uint8_t(b))) == b);

  // Three 2x2 grey images, two per row, 1 pixel of white around each.
  Tensor imgs = Tensor::rand({3, 2, 2, 1}, gen);
  std::vector<float> v = imgs.to_floats();
  for (float& x : v) x = 2 * x - 1;
  Image g = image_grid(Tensor::from_floats(v, {3, 2, 2, 1}), 2, 1);
  REQUIRE(g.width == 7);
  REQUIRE(g.height == 7);
  CHECK(g.at(0, 0)[0] == 255);
  CHECK(g.at(1, 1)[0] == to_byte(v[0]));
  CHECK(g.at(5, 2)[0] == to_byte(v[4 + 3]));  // image 1, pixel (1, 1)
  CHECK(g.at(1, 5)[0] == to_byte(v[8 + 2]));  // image 2, pixel (y 1, x 0)
  CHECK(g.at(5, 5)[0] == 255);                // the empty slot stays white
  CHECK_THROWS_AS(image_grid(Tensor::zeros({2, 2}), 1), Error);

  TempDir dir;
  Image rgb(5, 3, 3);
  rgb.pixels = random_bytes(rgb.pixels.size(), gen);
  write_png(dir / "a.png", rgb);
  Image back = read_image(dir / "a.png", 3);
  CHECK(back.width == 5);
  CHECK(back.pixels == rgb.pixels);
  CHECK_THROWS_WITH(read_image(dir / "missing.png", 3), Catch::Contains("missing.png"));
  CHECK_THROWS_WITH(write_png(dir / "no/such/dir.png", rgb), Catch::Contains("dir.png"));

  Image flat(6, 6, 3, 77);
  for (uint8_t p : resize_image(flat, 16, 10).pixels) REQUIRE(p == 77);

  Image canvas(40, 20, 3, 255);
  draw_line(canvas, 2, 3, 30, 15, {255, 0, 0});
  CHECK(canvas.at(2, 3)[1] == 0);
  CHECK(canvas.at(30, 15)[1] == 0);
  CHECK(canvas.at(30, 3)[1] == 255);
  Image text(60, 20, 3, 255);
  CHECK(draw_text(text, 1, 1, "t=1", {0, 0, 0}) > 0);
  int64_t dark = 0;
  for (uint8_t p : text.pixels) dark += p == 0;
  CHECK(dark > 10);
  fill_rect(canvas, -5, -5, 100, 100, {1, 2, 3});  // clipped, not out of bounds
  CHECK(canvas.at(39, 19)[2] == 3);
}

TEST_CASE("a run records its data spec with an absolute folder", "[data]") {
  const std::string cwd = fs::current_path().string();
  CHECK(absolute_data_spec("folder:pics/cats") == "folder:" + cwd + "/pics/cats");
  CHECK(absolute_data_spec("cifar10:./c/../cifar") == "cifar10:" + cwd + "/cifar");
  CHECK(absolute_data_spec("fashion-mnist:/usr/share/x") == "fashion-mnist:/usr/share/x");
  CHECK(absolute_data_spec("fashion-mnist") == "fashion-mnist");  // the default location
}
