// The synthetic DAGM generator: byte-identical output for a seed whatever the
// thread count, DAGM's exact file layout and Labels.txt format, NVIDIA's CSV
// lists, and for every class a defect that lies inside its label ellipse.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/png.h"
#include "unetind/synth.h"

namespace fs = std::filesystem;
using namespace unetind;

namespace {

SynthConfig small_config(int class_id, uint64_t seed) {
  SynthConfig c;
  c.class_id = class_id;
  c.size = 48;
  c.train_defective = 3;
  c.train_ok = 4;
  c.test_defective = 2;
  c.test_ok = 3;
  c.seed = seed;
  return c;
}

// Every file under `dir`, relative path -> bytes.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_file(e.path().string());
  return files;
}

std::vector<std::string> crlf_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t end = text.find("\r\n", begin);
    EXPECT_NE(end, std::string::npos) << "every line ends with CRLF";
    if (end == std::string::npos) break;
    lines.push_back(text.substr(begin, end - begin));
    begin = end + 2;
  }
  return lines;
}

TEST(Synth, SameSeedSameBytesWhateverTheThreads) {
  test::TempDir a, b, c;
  SynthConfig config = small_config(4, 42);
  config.threads = 1;
  write_synthetic_class(a.str(), config);
  config.threads = 3;
  write_synthetic_class(b.str(), config);
  const auto fa = snapshot(a.path()), fb = snapshot(b.path());
  EXPECT_EQ(fa.size(), 12u + 5u + 2u + 2u) << "12 images, 5 labels, 2 Labels.txt, 2 CSV";
  EXPECT_TRUE(fa == fb);

  config.seed = 43;
  write_synthetic_class(c.str(), config);
  const auto fc = snapshot(c.path());
  EXPECT_NE(fa.at("Class4/Train/0006.PNG"), fc.at("Class4/Train/0006.PNG"));
}

TEST(Synth, DagmLayoutLabelsTxtAndCsv) {
  test::TempDir dir;
  const SynthConfig config = small_config(7, 3);
  write_synthetic_class(dir.str(), config);
  const fs::path cls = dir.path() / "Class7";
  const std::regex defect_row(R"((\d{4})\t1\t(\d{4})\.PNG\t0\t(\d{4})_label\.PNG)");
  const std::regex clean_row(R"((\d{4})\t0\t(\d{4})\.PNG\t0\t0\t)");
  struct Expect {
    const char* split;
    const char* csv;
    int first, count, defective;
  };
  for (const Expect& e : {Expect{"Test", "test_list.csv", 1, 5, 2}, Expect{"Train", "train_list.csv", 6, 7, 3}}) {
    SCOPED_TRACE(e.split);
    const fs::path split = cls / e.split;
    const std::string labels = read_file((split / "Label" / "Labels.txt").string());
    const auto lines = crlf_lines(labels);
    ASSERT_EQ(lines.size(), static_cast<size_t>(e.count) + 1);
    EXPECT_EQ(lines[0], "1");
    std::string csv_expected = "image_filepath,lbl_image_filepath,is_defective\n";
    int defective = 0;
    for (int i = 0; i < e.count; ++i) {
      const std::string& row = lines[static_cast<size_t>(i) + 1];
      char id[8];
      std::snprintf(id, sizeof id, "%04d", e.first + i);
      std::smatch m;
      const bool is_defect = std::regex_match(row, m, defect_row);
      ASSERT_TRUE(is_defect || std::regex_match(row, m, clean_row)) << row;
      for (size_t g = 1; g < m.size(); ++g) EXPECT_EQ(m[g].str(), id) << row;
      EXPECT_TRUE(fs::is_regular_file(split / (std::string(id) + ".PNG")));
      EXPECT_EQ(fs::is_regular_file(split / "Label" / (std::string(id) + "_label.PNG")), is_defect) << id;
      defective += is_defect;
      csv_expected += std::string(id) + ".PNG," + (is_defect ? std::string(id) + "_label.PNG" : "") + "," +
                      (is_defect ? "1" : "0") + "\n";
    }
    EXPECT_EQ(defective, e.defective);
    EXPECT_EQ(read_file((cls / e.csv).string()), csv_expected);
  }
  int w = 0, h = 0;
  read_png_size((cls / "Train" / "0006.PNG").string(), w, h);
  EXPECT_EQ(w, 48);
  EXPECT_EQ(h, 48);
}

// The texture is drawn before the defect from the same random stream, so the
// defective and clean renderings of one image differ only by the defect: that
// difference must be clearly visible (at least 20 pixels changed by 15 gray
// levels or more) and lie inside the label ellipse.
TEST(Synth, EveryClassHasAVisibleDefectInsideItsLabel) {
  for (int size : {128, 256}) {
    for (int class_id = 1; class_id <= 10; ++class_id) {
      for (uint64_t index : {11u, 12u, 13u}) {
        SCOPED_TRACE("class " + std::to_string(class_id) + " size " + std::to_string(size) + " image " +
                     std::to_string(index));
        const SynthImage clean = synthesize_image(class_id, size, false, 7, index);
        const SynthImage defect = synthesize_image(class_id, size, true, 7, index);
        EXPECT_TRUE(std::all_of(clean.mask.begin(), clean.mask.end(), [](uint8_t v) { return v == 0; }));
        EXPECT_TRUE(std::all_of(defect.mask.begin(), defect.mask.end(), [](uint8_t v) { return v == 0 || v == 255; }));
        size_t inside = 0, visible = 0, changed_outside = 0;
        for (size_t i = 0; i < defect.pixels.size(); ++i) {
          const int d = std::abs(int(defect.pixels[i]) - int(clean.pixels[i]));
          inside += defect.mask[i] != 0;
          visible += d >= 15;
          changed_outside += d > 0 && defect.mask[i] == 0;
        }
        ASSERT_GT(inside, 0u);
        const double area = static_cast<double>(inside) / defect.mask.size();
        EXPECT_GT(area, 0.001);
        EXPECT_LT(area, 0.25) << "weak labels are local";
        EXPECT_EQ(changed_outside, 0u) << "the defect spills out of its label";
        EXPECT_GE(visible, 20u);
      }
    }
  }
}

TEST(Synth, ClassesLookDifferent) {
  // A crude texture signature: mean and the mean absolute difference of
  // horizontal and of vertical neighbours. No two classes share all three.
  std::vector<std::array<double, 3>> sig;
  for (int class_id = 1; class_id <= 10; ++class_id) {
    const SynthImage im = synthesize_image(class_id, 128, false, 1, 1);
    double mean = 0, dx = 0, dy = 0;
    for (int y = 0; y < 128; ++y)
      for (int x = 0; x < 128; ++x) {
        const int v = im.pixels[static_cast<size_t>(y * 128 + x)];
        mean += v;
        if (x) dx += std::abs(v - im.pixels[static_cast<size_t>(y * 128 + x - 1)]);
        if (y) dy += std::abs(v - im.pixels[static_cast<size_t>((y - 1) * 128 + x)]);
      }
    sig.push_back({mean / (128 * 128), dx / (127 * 128), dy / (127 * 128)});
  }
  for (size_t a = 0; a < sig.size(); ++a)
    for (size_t b = a + 1; b < sig.size(); ++b) {
      double d = 0;
      for (int k = 0; k < 3; ++k) d = std::max(d, std::abs(sig[a][static_cast<size_t>(k)] - sig[b][static_cast<size_t>(k)]));
      EXPECT_GT(d, 1.0) << "classes " << a + 1 << " and " << b + 1;
    }
}

TEST(Synth, BadConfigsAreErrors) {
  test::TempDir dir;
  SynthConfig c = small_config(0, 1);
  EXPECT_THROW(write_synthetic_class(dir.str(), c), Error);
  c = small_config(11, 1);
  EXPECT_THROW(write_synthetic_class(dir.str(), c), Error);
  c = small_config(1, 1);
  c.size = 16;
  EXPECT_THROW(write_synthetic_class(dir.str(), c), Error);
  c = small_config(1, 1);
  c.test_ok = 0;
  c.test_defective = 0;
  EXPECT_THROW(write_synthetic_class(dir.str(), c), Error);
  EXPECT_THROW(synthesize_image(12, 64, true, 0, 0), Error);
}

TEST(Synth, CommandLine) {
  test::TempDir dir;
  std::string out;
  const int rc = test::run_cli("synth --out " + dir.str() +
                                   " --class 9 --size 40 --train-defective 2 --train-ok 1 --test-defective 1"
                                   " --test-ok 1 --seed 5",
                               &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(dir.str() + "/Class9"), std::string::npos) << out;
  EXPECT_TRUE(fs::is_regular_file(dir.path() / "Class9" / "Train" / "Label" / "Labels.txt"));
  EXPECT_EQ(snapshot(dir.path() / "Class9" / "Train").size(), 3u + 2u + 1u);
  // The CLI writes what the library writes.
  SynthConfig c = small_config(9, 5);
  c.size = 40;
  c.train_defective = 2;
  c.train_ok = 1;
  c.test_defective = 1;
  c.test_ok = 1;
  test::TempDir lib;
  write_synthetic_class(lib.str(), c);
  EXPECT_TRUE(snapshot(dir.path()) == snapshot(lib.path()));

  EXPECT_NE(test::run_cli("synth --out " + dir.str() + " --class 11", &out), 0);
}

}  // namespace
