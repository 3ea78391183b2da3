// A synthetic stand-in for one DAGM 2007 class, written in the exact on-disk
// layout of the real data (SPEC.md section 3), so every tool can be tried
// without the real dataset. Ten procedural textures, one per class, each with
// its own kind of defect, and weak labels drawn as filled ellipses around the
// defects as DAGM's are. The same config and seed give the same bytes with
// any number of threads; our own distributions (not std::'s) keep other
// platforms to the same images up to libm's last-bit rounding.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace unetind {

struct SynthConfig {
  int class_id = 1;  // 1..10
  int size = 512;    // square images; texture and defect scales follow the size
  int train_defective = 80;
  int train_ok = 1000;
  int test_defective = 70;
  int test_ok = 1000;
  uint64_t seed = 0;
  int threads = 0;  // 0: one per hardware thread
};

// Writes under root/ClassN/: {Train,Test}/NNNN.PNG (8-bit gray),
// {Train,Test}/Label/NNNN_label.PNG (0/255) for defective images,
// {Train,Test}/Label/Labels.txt (DAGM's format: CRLF, first line "1"), and
// train_list.csv / test_list.csv as NVIDIA's preprocessing writes them. As in
// DAGM, Test is numbered from 0001 and Train continues after it. Existing
// files of the same names are replaced. Throws Error for a bad config or an
// unwritable folder.
void write_synthetic_class(const std::string& root, const SynthConfig& config);

// One image and its label mask (0 or 255), size*size bytes each; what
// write_synthetic_class writes for image number `index` of the class.
struct SynthImage {
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> mask;
};
SynthImage synthesize_image(int class_id, int size, bool defective, uint64_t seed, uint64_t index);

}  // namespace unetind
