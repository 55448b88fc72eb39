// Training data: labelled square images kept as bytes, handed out as f32 batches in [-1, 1].
//
// Data sets, named by a spec string (the `--data` flag):
//   fashion-mnist[:DIR]  IDX files {train-images-idx3,train-labels-idx1}-ubyte.gz from DIR (default
//                        /usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist); the
//                        28x28 images are padded to 32x32 with the background (black, -1).
//   cifar10:DIR          the binary batches DIR/data_batch_*.bin: records of 1 label byte then
//                        3072 bytes of 32x32 pixels, planes R, G, B (CHW).
//   folder:DIR           one subfolder per class (sorted names are class ids 0, 1, ...), each with
//                        PNG or JPEG files; center-cropped to a square, RGB.
// Images are then resized (bilinear) to the model's size when it differs. Every problem with the
// files throws ddpm::Error naming the file and what is wrong.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.hpp"

namespace ddpm {

struct Batch {
  Tensor images;  // f32 [n, size, size, channels] in [-1, 1]
  Tensor labels;  // i64 [n]
};

struct Dataset {
  std::string name;
  int64_t size = 0;      // images are size x size
  int64_t channels = 0;
  std::vector<uint8_t> pixels;  // [count, size, size, channels]
  std::vector<int64_t> labels;  // [count], each in [0, num_classes)
  std::vector<std::string> class_names;

  int64_t count() const { return int64_t(labels.size()); }
  int64_t num_classes() const { return int64_t(class_names.size()); }
  Batch batch(const std::vector<int64_t>& indices, Device device) const;
};

// `spec` as above; image_size must be a positive multiple of 8 (the U-Net halves it three times).
Dataset load_dataset(const std::string& spec, int64_t image_size);
// The same spec with its folder made absolute ("folder:data" -> "folder:/home/me/data"), as a
// training run records it: --resume then finds the data from any working directory.
std::string absolute_data_spec(const std::string& spec);

// Where Debian's dataset-fashion-mnist package puts the IDX files: the default everywhere.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// ---- IDX files (data_idx.cpp) ----
// An IDX array of unsigned bytes: magic 0x00 0x00 0x08 <ndim>, ndim big-endian u32 sizes, data.
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};
IdxArray parse_idx(const uint8_t* bytes, size_t size, const std::string& name);  // name: for messages
IdxArray read_idx(const std::string& path);  // gzip-compressed or plain
// split "train" (60000 images) or "t10k" (the official 10000-image test split), the files'
// prefix: {split}-images-idx3-ubyte.gz and {split}-labels-idx1-ubyte.gz.
Dataset load_fashion_mnist(const std::string& dir, const std::string& split = "train");

// ---- the other formats (data_cifar.cpp, data_folder.cpp) ----
Dataset load_cifar10(const std::string& dir);
Dataset load_image_folder(const std::string& dir, int64_t size);

}  // namespace ddpm
