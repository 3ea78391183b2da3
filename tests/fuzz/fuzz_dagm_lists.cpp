// DAGM 2007's split lists (src/data/dataset.cpp): Label/Labels.txt and
// NVIDIA's train_list.csv / test_list.csv.
//
// Input: one byte of choices (bit 0: a CSV list, else Labels.txt; bit 1:
// the Test split; bit 2: skip missing images), then the list's bytes. The
// class folder holds two images and one label file, so that rows naming
// them get past the existence checks.
#include "fuzz_support.h"
#include "unetind/dataset.h"
#include "unetind/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unetind;
  if (size < 1) return 0;
  const bool csv = data[0] & 1, test = data[0] & 2;
  DatasetOptions options;
  options.skip_missing = data[0] & 4;
  const Split split = test ? Split::Test : Split::Train;
  // The folders and images once; the lists of the input before are removed.
  static const std::filesystem::path root = [] {
    const std::filesystem::path r = fuzz::fresh_scratch_dir();
    for (const char* split_name : {"Train", "Test"})
      for (const char* file : {"0001.PNG", "0002.PNG", "Label/0001_label.PNG"})
        fuzz::write_bytes(r / "Class1" / split_name / file, "");
    return r;
  }();
  for (const char* list : {"train_list.csv", "test_list.csv", "Train/Label/Labels.txt", "Test/Label/Labels.txt"})
    std::filesystem::remove(root / "Class1" / list);
  const std::filesystem::path split_dir = root / "Class1" / to_string(split);
  const std::filesystem::path list =
      csv ? root / "Class1" / (test ? "test_list.csv" : "train_list.csv") : split_dir / "Label" / "Labels.txt";
  fuzz::write_bytes(list, fuzz::as_text(data + 1, size - 1));
  try {
    const std::vector<Sample> samples = load_dagm_split(root.string(), 1, split, options);
    if (samples.empty()) fuzz::finding("an empty split was accepted");
    for (const Sample& s : samples)
      if (s.defective && s.mask_path.empty()) fuzz::finding(s.image_path + " is defective without a label");
  } catch (const Error&) {
  }
  return 0;
}
