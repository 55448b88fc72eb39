#include "model/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace ddpm {
namespace {

using json = nlohmann::ordered_json;

[[noreturn]] void bad(const std::string& file, const std::string& problem) {
  detail::fail("safetensors", file, ": ", problem);
}

// A dtype as the file names it: the engine dtype it loads as and its size in the file.
struct FileDType {
  DType dtype;
  size_t size;
};

bool file_dtype(const std::string& name, FileDType& out) {
  if (name == "F32") out = {DType::F32, 4};
  else if (name == "BF16") out = {DType::BF16, 2};
  else if (name == "I32") out = {DType::I32, 4};
  else if (name == "I64") out = {DType::I64, 8};
  else if (name == "F64") out = {DType::F32, 8};  // converted to f32 on load
  else return false;
  return true;
}

const char* file_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

struct Entry {
  std::string name;
  FileDType dtype;
  Shape shape;
  uint64_t begin, end;  // byte range within the data section
};

struct Header {
  std::vector<Entry> entries;  // sorted by offset
  std::map<std::string, std::string> metadata;
};

// Parses the JSON header with a callback that rejects duplicate keys (the JSON library would
// silently keep the last) and nesting deeper than the format has (which also bounds the parser).
json parse_json(std::string_view text, const std::string& file) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  auto cb = [&](int depth, nlohmann::json::parse_event_t ev, json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (depth > 3) bad(file, "header nests deeper than a safetensors header can");
    if (ev == E::object_start) keys.emplace_back();
    if (ev == E::object_end) keys.pop_back();
    if (ev == E::key && !keys.back().insert(parsed.get<std::string>()).second)
      bad(file, "duplicate key '" + parsed.get<std::string>() + "' in the header");
    return true;
  };
  json h = json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false);
  if (h.is_discarded()) bad(file, "header is not valid JSON");
  if (!h.is_object()) bad(file, "header is not a JSON object");
  return h;
}

uint64_t as_u64(const json& v, const std::string& file, const std::string& what) {
  if (!v.is_number_unsigned()) bad(file, what + " must be a non-negative integer, got " + v.dump());
  return v.get<uint64_t>();
}

Entry parse_entry(const std::string& name, const json& v, uint64_t data_size, const std::string& file) {
  std::string where = "tensor '" + name + "'";
  if (name.empty()) bad(file, "a tensor has an empty name");
  if (!v.is_object() || v.size() != 3 || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
    bad(file, where + " must have exactly dtype, shape and data_offsets");
  Entry e{name, {}, {}, 0, 0};
  const json& dt = v["dtype"];
  if (!dt.is_string() || !file_dtype(dt.get<std::string>(), e.dtype))
    bad(file, where + " has unknown dtype " + dt.dump() + " (F32, BF16, I32, I64, F64 are read)");
  const json& shape = v["shape"];
  if (!shape.is_array()) bad(file, where + ": shape is not an array");
  uint64_t numel = 1;
  for (const json& d : shape) {
    uint64_t n = as_u64(d, file, where + " shape entry");
    if (n > uint64_t(std::numeric_limits<int64_t>::max()) || __builtin_mul_overflow(numel, n, &numel))
      bad(file, where + ": shape overflows");
    e.shape.push_back(int64_t(n));
  }
  const json& off = v["data_offsets"];
  if (!off.is_array() || off.size() != 2) bad(file, where + ": data_offsets must be [begin, end]");
  e.begin = as_u64(off[0], file, where + " offset");
  e.end = as_u64(off[1], file, where + " offset");
  if (e.begin > e.end || e.end > data_size)
    bad(file, where + " has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                  "] outside the " + std::to_string(data_size) + "-byte data section");
  uint64_t bytes;
  if (__builtin_mul_overflow(numel, uint64_t(e.dtype.size), &bytes) || bytes != e.end - e.begin)
    bad(file, where + ": shape " + shape_str(e.shape) + " of " + dt.get<std::string>() + " needs " +
                  std::to_string(numel) + " elements but data_offsets span " + std::to_string(e.end - e.begin) +
                  " bytes");
  return e;
}

Header parse_header(std::string_view text, uint64_t data_size, const std::string& file) {
  json h = parse_json(text, file);
  Header out;
  for (auto it = h.begin(); it != h.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) bad(file, "__metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) bad(file, "metadata '" + m.key() + "' is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
    } else {
      out.entries.push_back(parse_entry(it.key(), it.value(), data_size, file));
    }
  }
  // The tensors must tile the data section exactly: no overlaps, no gaps, nothing left over.
  std::stable_sort(out.entries.begin(), out.entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t pos = 0;
  for (const Entry& e : out.entries) {
    if (e.begin != pos)
      bad(file, "tensor '" + e.name + "' starts at byte " + std::to_string(e.begin) + " of the data section, expected " +
                    std::to_string(pos) + (e.begin < pos ? " (overlap)" : " (gap)"));
    pos = e.end;
  }
  if (pos != data_size)
    bad(file, "tensors cover " + std::to_string(pos) + " of the " + std::to_string(data_size) + " data bytes");
  return out;
}

// Builds the tensor for `e` from its bytes in the file (little-endian, as this host).
Tensor make_tensor(const Entry& e, const uint8_t* bytes) {
  Tensor t = Tensor::empty(e.shape, e.dtype.dtype);
  if (e.dtype.size == dtype_size(e.dtype.dtype)) {
    if (t.numel() > 0) std::memcpy(t.raw(), bytes, size_t(e.end - e.begin));
    return t;
  }
  float* p = t.data<float>();  // F64 -> F32
  for (int64_t i = 0; i < t.numel(); ++i) {
    double d;
    std::memcpy(&d, bytes + 8 * i, 8);
    p[i] = float(d);
  }
  return t;
}

// The 8-byte header length, checked against the size of the whole file.
uint64_t header_length(const uint8_t* first8, uint64_t file_size, const std::string& file) {
  if (file_size < 8) bad(file, "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | first8[i];
  if (n > file_size - 8)
    bad(file, "header length " + std::to_string(n) + " runs past the end of the " + std::to_string(file_size) +
                  "-byte file");
  return n;
}

}  // namespace

const Tensor& SafeTensors::at(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return t;
  bad(path, "no tensor named '" + name + "'");
}

bool SafeTensors::has(const std::string& name) const {
  for (const auto& [n, t] : tensors)
    if (n == name) return true;
  return false;
}

SafeTensors parse_safetensors(const uint8_t* data, size_t size, const std::string& name) {
  uint64_t n = header_length(data, size, name);
  const char* text = reinterpret_cast<const char*>(data + 8);
  Header h = parse_header(std::string_view(text, size_t(n)), size - 8 - n, name);
  SafeTensors out;
  out.path = name;
  out.metadata = std::move(h.metadata);
  for (const Entry& e : h.entries) out.tensors.emplace_back(e.name, make_tensor(e, data + 8 + n + e.begin));
  return out;
}

SafeTensors load_safetensors(const std::string& path) {
  // Opening a FIFO or a device would block or read forever: only plain files are read.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) bad(path, "not a regular file");
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) bad(path, std::string("cannot open: ") + std::strerror(errno));
  std::streamoff end = f.tellg();
  if (end < 0) bad(path, "cannot read (not a regular file?)");
  uint64_t size = uint64_t(end);
  uint8_t first8[8] = {};
  f.seekg(0);
  f.read(reinterpret_cast<char*>(first8), size < 8 ? std::streamsize(size) : 8);
  uint64_t n = header_length(first8, size, path);
  std::string text(size_t(n), '\0');
  f.read(text.data(), std::streamsize(n));
  if (!f) bad(path, "read failed in the header");
  Header h = parse_header(text, size - 8 - n, path);
  SafeTensors out;
  out.path = path;
  out.metadata = std::move(h.metadata);
  // Reads each tensor straight from the file: the whole file is never held twice in memory.
  std::vector<uint8_t> buf;
  for (const Entry& e : h.entries) {
    buf.resize(size_t(e.end - e.begin));
    f.seekg(std::streamoff(8 + n + e.begin));
    f.read(reinterpret_cast<char*>(buf.data()), std::streamsize(buf.size()));
    if (!f) bad(path, "read failed for tensor '" + e.name + "'");
    out.tensors.emplace_back(e.name, make_tensor(e, buf.data()));
  }
  return out;
}

bool valid_utf8(const std::string& text) {
  try {
    (void)json(text).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata, Commit commit) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> host;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    DDPM_CHECK(!name.empty() && name != "__metadata__", "save_safetensors", path, ": bad tensor name '", name, "'");
    DDPM_CHECK(!header.contains(name), "save_safetensors", path, ": duplicate tensor name '", name, "'");
    DDPM_CHECK(t.defined(), "save_safetensors", path, ": tensor '", name, "' is undefined");
    host.push_back(t.to(Device::CPU));
    uint64_t bytes = uint64_t(t.numel()) * dtype_size(t.dtype());
    header[name] = {{"dtype", file_dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception&) {
    // A data path or class folder with bytes that are not UTF-8: name the entry that holds them.
    for (const auto& [key, value] : metadata)
      if (!valid_utf8(key) || !valid_utf8(value))
        detail::fail("save_safetensors", path, ": metadata '", key, "' is not valid UTF-8");
    detail::fail("save_safetensors", path, ": a tensor name is not valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  const std::string tmp = path + ".tmp";
  // The rename would replace whatever PATH is (a device, a FIFO, a link), and opening a FIFO .tmp
  // would block: only plain files, or nothing yet, are written.
  for (const std::string& p : {path, tmp}) {
    std::error_code ec;
    const auto status = std::filesystem::symlink_status(p, ec);
    DDPM_CHECK(!std::filesystem::exists(status) || std::filesystem::is_regular_file(status), "save_safetensors", p,
               " exists and is not a regular file");
  }
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  DDPM_CHECK(fd >= 0, "save_safetensors", "cannot create ", tmp, ": ", std::strerror(errno));
  auto write_all = [&](const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      ssize_t w = ::write(fd, c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      c += w;
      n -= size_t(w);
    }
    return true;
  };
  bool ok = write_all(len, 8) && write_all(text.data(), text.size());
  for (const Tensor& t : host) ok = ok && write_all(t.raw(), size_t(t.numel()) * dtype_size(t.dtype()));
  ok = ok && ::fsync(fd) == 0;
  const int err = errno;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    detail::fail("save_safetensors", "cannot write ", path, ": ", std::strerror(err));
  }
  if (commit == Commit::Later) return;
  try {
    commit_safetensors(path);
  } catch (const Error&) {
    std::remove(tmp.c_str());
    throw;
  }
}

void commit_safetensors(const std::string& path) {
  const std::string tmp = path + ".tmp";
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    detail::fail("save_safetensors", "cannot write ", path, ": ", std::strerror(errno));
}

}  // namespace ddpm
