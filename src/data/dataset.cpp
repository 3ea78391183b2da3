#include "unetind/dataset.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/image_io.h"
#include "unetind/png.h"

namespace fs = std::filesystem;

namespace unetind {

std::string to_string(Split s) { return s == Split::Train ? "Train" : "Test"; }

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Regular files in `dir` named as images (has_image_extension), sorted by name.
std::vector<fs::path> list_images(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && has_image_extension(it->path().string())) out.push_back(it->path());
  }
  if (ec) throw_file_error(dir.string(), "cannot list folder: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

void sort_by_file_name(std::vector<Sample>& samples) {
  std::sort(samples.begin(), samples.end(), [](const Sample& a, const Sample& b) {
    const std::string fa = fs::path(a.image_path).filename().string();
    const std::string fb = fs::path(b.image_path).filename().string();
    return fa != fb ? fa < fb : a.image_path < b.image_path;
  });
}

// The folder of one DAGM class: root/ClassN, or root itself when it is ClassN.
fs::path class_dir(const std::string& root, int class_id, const std::string& suffix = "") {
  if (class_id < 1 || class_id > 10)
    throw Error("DAGM class id must be 1..10, got " + std::to_string(class_id) + " (root " + root + ")");
  const std::string name = "Class" + std::to_string(class_id) + suffix;
  fs::path r(root);
  if (!r.has_filename()) r = r.parent_path();  // "data/Class1/" names Class1
  if (is_dir(r / name)) return r / name;
  if (r.filename() == name && is_dir(r)) return r;
  if (!is_dir(r)) throw_file_error(root, "dataset folder does not exist");
  throw_file_error(root, "no folder " + name + " in it (give the folder that holds " + name + ", or " + name +
                             " itself)");
}

std::vector<std::string> split_fields(const std::string& line, char sep) {
  std::vector<std::string> fields;
  size_t begin = 0;
  for (;;) {
    const size_t end = line.find(sep, begin);
    fields.push_back(line.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) return fields;
    begin = end + 1;
  }
}

// Lines without their LF or CRLF ending.
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines = split_fields(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // the final line ending
  for (auto& l : lines)
    if (!l.empty() && l.back() == '\r') l.pop_back();
  return lines;
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); });
}

// One row of a split list, before the files are checked.
struct Entry {
  fs::path image;
  fs::path mask;  // empty: no label
  bool defective = false;
  std::string where;  // "list:line" for errors
};

[[noreturn]] void malformed(const fs::path& list, size_t line, const std::string& what, const std::string& text) {
  throw Error(list.string() + ":" + std::to_string(line) + ": " + what + ": '" + text + "'");
}

// DAGM's Label/Labels.txt: a first line "1", then one row per image,
// `NNNN<TAB>1<TAB>NNNN.PNG<TAB>0<TAB>NNNN_label.PNG` or
// `NNNN<TAB>0<TAB>NNNN.PNG<TAB>0<TAB>0`, clean rows often with a trailing tab.
std::vector<Entry> parse_labels_txt(const fs::path& list, const fs::path& split_dir) {
  const std::vector<std::string> lines = split_lines(read_file(list.string()));
  if (lines.empty() || !all_digits(lines[0])) {
    malformed(list, 1, "expected the header line \"1\"", lines.empty() ? "" : lines[0]);
  }
  std::vector<Entry> entries;
  std::map<std::string, size_t> seen;  // image name -> line
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& text = lines[i];
    const size_t line = i + 1;
    if (blank(text)) continue;
    std::vector<std::string> f = split_fields(text, '\t');
    if (f.size() == 6 && f[5].empty()) f.pop_back();
    if (f.size() != 5)
      malformed(list, line, "expected 5 tab-separated fields (id, defect 0|1, image, 0, label|0)", text);
    if (!all_digits(f[0])) malformed(list, line, "image id is not a number", text);
    if (f[1] != "0" && f[1] != "1") malformed(list, line, "defect flag must be 0 or 1", text);
    if (f[2].empty()) malformed(list, line, "empty image file name", text);
    const bool defective = f[1] == "1";
    if (defective && (f[4].empty() || f[4] == "0")) malformed(list, line, "defective image without a label file", text);
    if (!defective && f[4] != "0") malformed(list, line, "defect-free image with a label file", text);
    if (auto [it, fresh] = seen.emplace(f[2], line); !fresh)
      malformed(list, line, "image already listed on line " + std::to_string(it->second), text);
    Entry e;
    e.image = split_dir / f[2];
    if (defective) e.mask = split_dir / "Label" / f[4];
    e.defective = defective;
    e.where = list.string() + ":" + std::to_string(line);
    entries.push_back(std::move(e));
  }
  return entries;
}

// A relative path from NVIDIA's CSV lists, resolved as its loader does
// (against `primary`), falling back to the class folder.
fs::path resolve_listed(const std::string& p, const fs::path& primary, const fs::path& class_folder) {
  const fs::path path(p);
  if (path.is_absolute()) return path;
  if (!is_file(primary / path) && is_file(class_folder / path)) return class_folder / path;
  return primary / path;
}

// NVIDIA's ClassN/train_list.csv | test_list.csv.
std::vector<Entry> parse_csv_list(const fs::path& list, const fs::path& cls, const fs::path& split_dir) {
  static const std::string kHeader = "image_filepath,lbl_image_filepath,is_defective";
  const std::vector<std::string> lines = split_lines(read_file(list.string()));
  if (lines.empty() || lines[0] != kHeader) malformed(list, 1, "expected the header " + kHeader, lines.empty() ? "" : lines[0]);
  std::vector<Entry> entries;
  std::map<std::string, size_t> seen;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& text = lines[i];
    const size_t line = i + 1;
    if (blank(text)) continue;
    const std::vector<std::string> f = split_fields(text, ',');
    if (f.size() != 3) malformed(list, line, "expected 3 comma-separated fields", text);
    if (f[0].empty()) malformed(list, line, "empty image path", text);
    if (f[2] != "0" && f[2] != "1") malformed(list, line, "is_defective must be 0 or 1", text);
    if (f[2] == "1" && f[1].empty()) malformed(list, line, "defective image without a label file", text);
    if (auto [it, fresh] = seen.emplace(f[0], line); !fresh)
      malformed(list, line, "image already listed on line " + std::to_string(it->second), text);
    Entry e;
    e.image = resolve_listed(f[0], split_dir, cls);
    if (!f[1].empty()) e.mask = resolve_listed(f[1], split_dir / "Label", cls);
    e.defective = f[2] == "1";
    e.where = list.string() + ":" + std::to_string(line);
    entries.push_back(std::move(e));
  }
  return entries;
}

// The image files of `dir` by lower-case stem; two whose names differ only
// in letter case or extension are an error (which would be meant?).
std::map<std::string, fs::path> images_by_stem(const fs::path& dir) {
  std::map<std::string, fs::path> by_stem;
  if (!is_dir(dir)) return by_stem;
  for (const fs::path& m : list_images(dir)) {
    if (auto [it, fresh] = by_stem.emplace(lower(m.stem().string()), m); !fresh)
      throw_file_error(m.string(), "same name as " + it->second.string() + " but for letter case or extension");
  }
  return by_stem;
}

// No list at all: what NVIDIA's preprocessing does, a label file
// (Label/<stem>_label.<image extension>) marks a defect.
std::vector<Entry> scan_split_folder(const fs::path& split_dir) {
  const std::map<std::string, fs::path> labels = images_by_stem(split_dir / "Label");
  std::vector<Entry> entries;
  for (const fs::path& image : list_images(split_dir)) {
    Entry e;
    e.image = image;
    if (auto it = labels.find(lower(image.stem().string()) + "_label"); it != labels.end()) {
      e.mask = it->second;
      e.defective = true;
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace

std::vector<Sample> load_dagm_split(const std::string& root, int class_id, Split split, const DatasetOptions& options) {
  const fs::path cls = class_dir(root, class_id);
  const fs::path split_dir = cls / to_string(split);
  const fs::path csv = cls / (lower(to_string(split)) + "_list.csv");
  const fs::path labels = split_dir / "Label" / "Labels.txt";

  std::vector<Entry> entries;
  fs::path source;
  if (is_file(csv)) {
    entries = parse_csv_list(csv, cls, split_dir);
    source = csv;
  } else {
    if (!is_dir(split_dir)) throw_file_error(split_dir.string(), "split folder does not exist");
    if (is_file(labels)) {
      entries = parse_labels_txt(labels, split_dir);
      source = labels;
    } else {
      entries = scan_split_folder(split_dir);
      source = split_dir;
    }
  }

  std::vector<Sample> samples;
  size_t missing = 0;
  for (const Entry& e : entries) {
    if (!is_file(e.image)) {
      if (options.skip_missing) {
        ++missing;
        continue;
      }
      throw_file_error(e.image.string(), "image listed in " + e.where + " does not exist");
    }
    if (!e.mask.empty() && !is_file(e.mask))
      throw_file_error(e.mask.string(), "label of " + e.image.filename().string() + " listed in " + e.where +
                                            " does not exist");
    samples.push_back({e.image.string(), e.mask.string(), e.defective});
  }
  if (samples.empty()) {
    throw_file_error(source.string(), entries.empty() ? "no images"
                                                      : "none of the " + std::to_string(missing) +
                                                            " listed images exists");
  }
  sort_by_file_name(samples);
  return samples;
}

std::vector<Sample> load_dagm_public(const std::string& root, int class_id) {
  const fs::path ok_dir = class_dir(root, class_id);
  const fs::path def_dir = ok_dir.parent_path() / (ok_dir.filename().string() + "_def");
  if (!is_dir(def_dir)) throw_file_error(def_dir.string(), "folder of defective images does not exist");
  std::vector<Sample> samples;
  for (const auto& [dir, defective] : {std::pair{ok_dir, false}, std::pair{def_dir, true}}) {
    std::vector<Sample> part;
    for (const fs::path& image : list_images(dir)) part.push_back({image.string(), "", defective});
    if (part.empty()) throw_file_error(dir.string(), "no images");
    sort_by_file_name(part);
    samples.insert(samples.end(), part.begin(), part.end());
  }
  return samples;
}

namespace {
// A PNG's size from its header alone; other formats are decoded (each
// decoder checks the pixel limit from its header first).
void read_image_size(const std::string& path, int& width, int& height) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".png") return read_png_size(path, width, height);
  const GrayImage image = read_image_gray(path);
  width = image.width;
  height = image.height;
}
}  // namespace

std::string check_samples(const std::vector<Sample>& samples) {
  std::vector<std::string> empty_masks;
  for (const Sample& s : samples) {
    int width = 0, height = 0;
    read_image_size(s.image_path, width, height);
    if (s.mask_path.empty()) continue;
    const GrayImage mask = read_image_gray(s.mask_path);
    if (mask.width != width || mask.height != height)
      throw_file_error(s.mask_path, "mask is " + std::to_string(mask.width) + "x" + std::to_string(mask.height) +
                                        " but its image " + s.image_path + " is " + std::to_string(width) + "x" +
                                        std::to_string(height));
    const float largest = mask.pixels.empty() ? 0 : *std::max_element(mask.pixels.begin(), mask.pixels.end());
    if (largest > 0 && largest <= 1)
      throw_file_error(s.mask_path, "mask values go up to " + std::to_string(largest) +
                                        " only: masks are read as value/255 (SPEC.md), so 0/1 masks are all but "
                                        "empty; write them as 0 and 255");
    if (largest == 0 && s.defective) empty_masks.push_back(s.mask_path);
  }
  if (empty_masks.empty()) return "";
  std::string list;
  for (size_t i = 0; i < empty_masks.size() && i < 5; ++i) list += (i ? ", " : "") + empty_masks[i];
  if (empty_masks.size() > 5) list += ", ...";
  return "warning: " + std::to_string(empty_masks.size()) +
         " defective image(s) have an all-zero mask and count as defect-free: " + list;
}

std::vector<Sample> load_folder_dataset(const std::string& dir) {
  const fs::path images_dir = fs::path(dir) / "images";
  const fs::path masks_dir = fs::path(dir) / "masks";
  if (!is_dir(images_dir)) throw_file_error(images_dir.string(), "images folder does not exist");

  const std::map<std::string, fs::path> masks = images_by_stem(masks_dir);

  std::vector<Sample> samples;
  for (const fs::path& image : list_images(images_dir)) {
    const std::string stem = lower(image.stem().string());
    Sample s{image.string(), "", false};
    for (const std::string& name : {stem, stem + "_label"}) {
      if (auto it = masks.find(name); it != masks.end()) {
        s.mask_path = it->second.string();
        const GrayImage mask = read_image_gray(s.mask_path);
        s.defective = std::any_of(mask.pixels.begin(), mask.pixels.end(), [](float v) { return v > 0.0f; });
        break;
      }
    }
    samples.push_back(std::move(s));
  }
  if (samples.empty()) throw_file_error(images_dir.string(), std::string("no images (") + kImageFormatsText + ")");
  return samples;  // list_images sorted them by name
}

}  // namespace unetind
