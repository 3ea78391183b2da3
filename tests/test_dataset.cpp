// Dataset listing: the real DAGM fixtures (partial splits), synthetic classes
// through each of the three list sources, the MPI and folder layouts, and
// every error with the path (or file:line) it must name.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "test_util.h"
#include "unetind/atomic_file.h"
#include "unetind/dataset.h"
#include "unetind/error.h"
#include "unetind/png.h"
#include "unetind/synth.h"

namespace fs = std::filesystem;
using namespace unetind;

namespace {

std::string fixtures_dir() {
  const std::string shared = test::shared_dir();
  if (shared.empty()) return "";
  const std::string dir = shared + "/fixtures/dagm2007";
  return fs::is_directory(dir) ? dir : "";
}

#define REQUIRE_FIXTURES(dir)                                                                             \
  const std::string dir = fixtures_dir();                                                                 \
  if (dir.empty()) GTEST_SKIP() << "DAGM fixtures not found under " UNETIND_SHARED_DIR "/fixtures/dagm2007"

std::string stem(const Sample& s) { return fs::path(s.image_path).stem().string(); }

// Expects `f` to throw Error whose message contains every string in `parts`.
template <typename F>
void expect_error(F f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one naming " << parts.front();
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\nlacks: " << p;
  }
}

void write_gray(const fs::path& path, int w, int h, uint8_t value) {
  fs::create_directories(path.parent_path());
  write_png_gray8(path.string(), w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h, value));
}

// A hand-made DAGM split: ClassN/<split>/ with the given images and labels
// and a Labels.txt holding `labels` verbatim.
struct HandSplit {
  fs::path split_dir;
  HandSplit(const fs::path& root, int class_id, const std::string& split) {
    split_dir = root / ("Class" + std::to_string(class_id)) / split;
    fs::create_directories(split_dir / "Label");
  }
  void image(const std::string& name) { write_gray(split_dir / name, 8, 8, 100); }
  void label(const std::string& name) { write_gray(split_dir / "Label" / name, 8, 8, 255); }
  void labels(const std::string& text) { write_file_atomic((split_dir / "Label" / "Labels.txt").string(), text); }
  std::string labels_path() const { return (split_dir / "Label" / "Labels.txt").string(); }
};

// ------------------------------------------------------------ real DAGM data

TEST(DagmFixtures, Class1TrainHasTheFivePresentImagesWithTheirFlags) {
  REQUIRE_FIXTURES(dir);
  const auto samples = load_dagm_split(dir, 1, Split::Train, {.skip_missing = true});
  // From the fixture table in SOURCE.md.
  const std::vector<std::pair<std::string, bool>> expected = {
      {"0593", false}, {"0595", true}, {"0602", false}, {"0616", true}, {"0626", true}};
  ASSERT_EQ(samples.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(stem(samples[i]), expected[i].first);
    EXPECT_EQ(samples[i].defective, expected[i].second) << samples[i].image_path;
    if (expected[i].second) {
      EXPECT_EQ(fs::path(samples[i].mask_path).filename(), expected[i].first + "_label.PNG");
      EXPECT_TRUE(fs::is_regular_file(samples[i].mask_path));
    } else {
      EXPECT_TRUE(samples[i].mask_path.empty());
    }
  }
}

TEST(DagmFixtures, Class1TestAndClass4Train) {
  REQUIRE_FIXTURES(dir);
  const auto test = load_dagm_split(dir, 1, Split::Test, {.skip_missing = true});
  const std::vector<std::pair<std::string, bool>> test_expected = {{"0001", false}, {"0002", true}, {"0003", false},
                                                                   {"0004", false}, {"0010", true}, {"0021", true}};
  ASSERT_EQ(test.size(), test_expected.size());
  for (size_t i = 0; i < test.size(); ++i) {
    EXPECT_EQ(stem(test[i]), test_expected[i].first);
    EXPECT_EQ(test[i].defective, test_expected[i].second);
  }
  const auto c4 = load_dagm_split(dir, 4, Split::Train, {.skip_missing = true});
  const std::vector<std::pair<std::string, bool>> c4_expected = {
      {"0576", true}, {"0577", false}, {"0579", false}, {"0602", true}, {"0624", true}};
  ASSERT_EQ(c4.size(), c4_expected.size());
  for (size_t i = 0; i < c4.size(); ++i) {
    EXPECT_EQ(stem(c4[i]), c4_expected[i].first);
    EXPECT_EQ(c4[i].defective, c4_expected[i].second);
  }
}

TEST(DagmFixtures, ClassFolderItselfIsAcceptedAsRoot) {
  REQUIRE_FIXTURES(dir);
  const auto from_root = load_dagm_split(dir, 2, Split::Train, {.skip_missing = true});
  const auto from_class = load_dagm_split(dir + "/Class2/", 2, Split::Train, {.skip_missing = true});
  ASSERT_EQ(from_root.size(), 5u);
  ASSERT_EQ(from_class.size(), from_root.size());
  for (size_t i = 0; i < from_root.size(); ++i) {
    EXPECT_EQ(fs::canonical(from_root[i].image_path), fs::canonical(from_class[i].image_path));
    EXPECT_EQ(from_root[i].defective, from_class[i].defective);
  }
}

TEST(DagmFixtures, MissingListedImageIsAnErrorUnlessSkipped) {
  REQUIRE_FIXTURES(dir);
  // Row 1 of Class1/Train/Labels.txt (line 2) is image 0576, which the fixtures lack.
  expect_error([&] { load_dagm_split(dir, 1, Split::Train); }, {"Class1/Train/0576.PNG", "Labels.txt:2"});
}

// ------------------------------------------------------------ synthetic data

TEST(DagmSynthetic, EverySourceGivesTheSameSamples) {
  test::TempDir tmp;
  SynthConfig config;
  config.class_id = 6;
  config.size = 32;
  config.train_defective = 3;
  config.train_ok = 4;
  config.test_defective = 2;
  config.test_ok = 3;
  config.seed = 9;
  write_synthetic_class(tmp.str(), config);

  const auto from_csv = load_dagm_split(tmp.str(), 6, Split::Train);
  ASSERT_EQ(from_csv.size(), 7u);
  int defective = 0;
  for (size_t i = 0; i < from_csv.size(); ++i) {
    const std::string number = std::to_string(6 + i);
    EXPECT_EQ(stem(from_csv[i]), std::string(4 - number.size(), '0') + number) << "Train follows the 5 Test images";
    defective += from_csv[i].defective;
    EXPECT_EQ(from_csv[i].mask_path.empty(), !from_csv[i].defective);
    if (from_csv[i].defective) {
      EXPECT_TRUE(fs::is_regular_file(from_csv[i].mask_path));
    }
  }
  EXPECT_EQ(defective, 3);
  const auto test_split = load_dagm_split(tmp.str(), 6, Split::Test);
  ASSERT_EQ(test_split.size(), 5u);
  EXPECT_EQ(stem(test_split.front()), "0001");

  fs::remove(tmp.path() / "Class6" / "train_list.csv");
  const auto from_labels = load_dagm_split(tmp.str(), 6, Split::Train);
  fs::remove(tmp.path() / "Class6" / "Train" / "Label" / "Labels.txt");
  const auto from_scan = load_dagm_split(tmp.str(), 6, Split::Train);
  for (const auto* other : {&from_labels, &from_scan}) {
    ASSERT_EQ(other->size(), from_csv.size());
    for (size_t i = 0; i < from_csv.size(); ++i) {
      EXPECT_EQ(fs::canonical((*other)[i].image_path), fs::canonical(from_csv[i].image_path));
      EXPECT_EQ((*other)[i].defective, from_csv[i].defective);
      EXPECT_EQ((*other)[i].mask_path.empty(), from_csv[i].mask_path.empty());
    }
  }
}

// ------------------------------------------------------------ Labels.txt parsing

TEST(LabelsTxt, LfEndingsTrailingTabsAndUnlistedImages) {
  test::TempDir tmp;
  HandSplit s(tmp.path(), 3, "Train");
  for (const char* n : {"0002.PNG", "0001.PNG", "0003.PNG", "0009.PNG"}) s.image(n);
  s.label("0002_label.PNG");
  // LF endings, a trailing tab on one clean row, not on the other, a blank last line.
  s.labels("1\n0002\t1\t0002.PNG\t0\t0002_label.PNG\n0001\t0\t0001.PNG\t0\t0\t\n0003\t0\t0003.PNG\t0\t0\n\n");
  const auto samples = load_dagm_split(tmp.str(), 3, Split::Train);
  ASSERT_EQ(samples.size(), 3u) << "0009.PNG is not listed and must be ignored";
  EXPECT_EQ(stem(samples[0]), "0001");
  EXPECT_EQ(stem(samples[1]), "0002");
  EXPECT_EQ(stem(samples[2]), "0003");
  EXPECT_TRUE(samples[1].defective);
  EXPECT_EQ(fs::path(samples[1].mask_path), s.split_dir / "Label" / "0002_label.PNG");
  EXPECT_FALSE(samples[0].defective);
  EXPECT_FALSE(samples[2].defective);
}

TEST(LabelsTxt, MalformedLinesNameFileAndLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"0001\t0\t0001.PNG\t0\t0\r\n", ":1"},                                    // no header
      {"1\r\n0001\t0\t0001.PNG\t0\t0\r\n0002\t0\t0002.PNG\r\n", ":3"},          // 3 fields
      {"1\r\n0001\t2\t0001.PNG\t0\t0\r\n", ":2"},                               // flag 2
      {"1\r\n0001\t1\t0001.PNG\t0\t0\r\n", ":2"},                               // defective, no label
      {"1\r\n0001\t0\t0001.PNG\t0\t0001_label.PNG\r\n", ":2"},                  // clean, with label
      {"1\r\nx001\t0\t0001.PNG\t0\t0\r\n", ":2"},                               // bad id
      {"1\r\n0001\t0\t0001.PNG\t0\t0\r\n0001\t0\t0001.PNG\t0\t0\r\n", ":3"},    // listed twice
      {"1\r\n0001\t0\t0001.PNG\t0\t0\tx\r\n", ":2"},                            // 6th field
  };
  for (const auto& [text, line] : cases) {
    test::TempDir tmp;
    HandSplit s(tmp.path(), 1, "Test");
    s.image("0001.PNG");
    s.image("0002.PNG");
    s.labels(text);
    SCOPED_TRACE(text);
    expect_error([&] { load_dagm_split(tmp.str(), 1, Split::Test); }, {s.labels_path() + line});
  }
}

TEST(LabelsTxt, ListedLabelThatIsMissingIsAnError) {
  test::TempDir tmp;
  HandSplit s(tmp.path(), 2, "Train");
  s.image("0005.PNG");
  s.labels("1\r\n0005\t1\t0005.PNG\t0\t0005_label.PNG\r\n");
  const std::string label = (s.split_dir / "Label" / "0005_label.PNG").string();
  expect_error([&] { load_dagm_split(tmp.str(), 2, Split::Train); }, {label, "Labels.txt:2"});
  // skip_missing covers missing images only, never missing labels.
  expect_error([&] { load_dagm_split(tmp.str(), 2, Split::Train, {.skip_missing = true}); }, {label});
}

TEST(LabelsTxt, NoImagesNamesTheList) {
  test::TempDir tmp;
  HandSplit s(tmp.path(), 2, "Train");
  s.labels("1\r\n");
  expect_error([&] { load_dagm_split(tmp.str(), 2, Split::Train); }, {s.labels_path(), "no images"});
  s.labels("1\r\n0001\t0\t0001.PNG\t0\t0\r\n");
  expect_error([&] { load_dagm_split(tmp.str(), 2, Split::Train, {.skip_missing = true}); }, {s.labels_path()});
}

// ------------------------------------------------------------ folders

TEST(DagmErrors, MissingFoldersAreNamed) {
  test::TempDir tmp;
  expect_error([&] { load_dagm_split(tmp.str("nowhere"), 1, Split::Train); }, {tmp.str("nowhere")});
  expect_error([&] { load_dagm_split(tmp.str(), 3, Split::Train); }, {tmp.str(), "Class3"});
  fs::create_directories(tmp.path() / "Class3" / "Train");
  expect_error([&] { load_dagm_split(tmp.str(), 3, Split::Test); }, {(tmp.path() / "Class3" / "Test").string()});
  // An empty split folder without a Labels.txt: nothing to scan.
  expect_error([&] { load_dagm_split(tmp.str(), 3, Split::Train); },
               {(tmp.path() / "Class3" / "Train").string(), "no images"});
  expect_error([&] { load_dagm_split(tmp.str(), 11, Split::Train); }, {"11"});
}

// ------------------------------------------------------------ NVIDIA CSV lists

TEST(CsvList, RelativeAbsoluteAndClassRelativePaths) {
  test::TempDir tmp;
  HandSplit s(tmp.path(), 5, "Train");
  s.image("0001.PNG");
  s.image("0002.PNG");
  s.image("0003.PNG");
  s.label("0002_label.PNG");
  s.label("0003_label.PNG");
  const fs::path cls = tmp.path() / "Class5";
  // NVIDIA's form, an absolute path, and a path relative to the class folder.
  write_file_atomic((cls / "train_list.csv").string(),
                    "image_filepath,lbl_image_filepath,is_defective\n"
                    "0002.PNG,0002_label.PNG,1\n" +
                        (s.split_dir / "0001.PNG").string() + ",,0\n" +
                        "Train/0003.PNG,Train/Label/0003_label.PNG,1\n");
  const auto samples = load_dagm_split(tmp.str(), 5, Split::Train);
  ASSERT_EQ(samples.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(fs::canonical(samples[i].image_path), fs::canonical(s.split_dir / ("000" + std::to_string(i + 1) + ".PNG")));
    EXPECT_EQ(samples[i].defective, i > 0);
  }
  EXPECT_EQ(fs::canonical(samples[2].mask_path), fs::canonical(s.split_dir / "Label" / "0003_label.PNG"));
}

TEST(CsvList, MalformedRowsNameFileAndLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"image,label,defective\n0001.PNG,,0\n", ":1"},
      {"image_filepath,lbl_image_filepath,is_defective\n0001.PNG,,0\n0001.PNG,0\n", ":3"},
      {"image_filepath,lbl_image_filepath,is_defective\n0001.PNG,,yes\n", ":2"},
      {"image_filepath,lbl_image_filepath,is_defective\n0001.PNG,,1\n", ":2"},
  };
  for (const auto& [text, line] : cases) {
    test::TempDir tmp;
    HandSplit s(tmp.path(), 1, "Test");
    s.image("0001.PNG");
    const std::string csv = (tmp.path() / "Class1" / "test_list.csv").string();
    write_file_atomic(csv, text);
    SCOPED_TRACE(text);
    expect_error([&] { load_dagm_split(tmp.str(), 1, Split::Test); }, {csv + line});
  }
}

TEST(CsvList, MissingImageAndLabelAreNamed) {
  test::TempDir tmp;
  HandSplit s(tmp.path(), 1, "Test");
  s.image("0001.PNG");
  const std::string csv = (tmp.path() / "Class1" / "test_list.csv").string();
  write_file_atomic(csv, "image_filepath,lbl_image_filepath,is_defective\n0001.PNG,0001_label.PNG,1\n0002.PNG,,0\n");
  expect_error([&] { load_dagm_split(tmp.str(), 1, Split::Test); },
               {(s.split_dir / "Label" / "0001_label.PNG").string(), "test_list.csv:2"});
  s.label("0001_label.PNG");
  expect_error([&] { load_dagm_split(tmp.str(), 1, Split::Test); }, {(s.split_dir / "0002.PNG").string(), ":3"});
  EXPECT_EQ(load_dagm_split(tmp.str(), 1, Split::Test, {.skip_missing = true}).size(), 1u);
}

// ------------------------------------------------------------ public MPI layout

TEST(DagmPublic, DefectFreeThenDefectiveWithoutMasks) {
  test::TempDir tmp;
  write_gray(tmp.path() / "Class2" / "2.png", 8, 8, 1);
  write_gray(tmp.path() / "Class2" / "1.png", 8, 8, 1);
  write_gray(tmp.path() / "Class2_def" / "1.png", 8, 8, 1);
  write_file_atomic((tmp.path() / "Class2_def" / "labels.txt").string(), "1\t10\t5\t0.5\t100\t100\n");
  const auto samples = load_dagm_public(tmp.str(), 2);
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].image_path, (tmp.path() / "Class2" / "1.png").string());
  EXPECT_EQ(samples[1].image_path, (tmp.path() / "Class2" / "2.png").string());
  EXPECT_EQ(samples[2].image_path, (tmp.path() / "Class2_def" / "1.png").string());
  EXPECT_FALSE(samples[0].defective);
  EXPECT_FALSE(samples[1].defective);
  EXPECT_TRUE(samples[2].defective);
  for (const auto& s : samples) EXPECT_TRUE(s.mask_path.empty());
  expect_error([&] { load_dagm_public(tmp.str(), 3); }, {"Class3"});
  fs::create_directories(tmp.path() / "Class4");
  expect_error([&] { load_dagm_public(tmp.str(), 4); }, {(tmp.path() / "Class4_def").string()});
}

// ------------------------------------------------------------ generic folder

TEST(FolderDataset, MasksByStemAndDefectFromMaskContent) {
  test::TempDir tmp;
  write_gray(tmp.path() / "images" / "b.PNG", 8, 8, 50);
  write_gray(tmp.path() / "images" / "a.png", 8, 8, 50);
  write_gray(tmp.path() / "images" / "c.png", 8, 8, 50);
  write_file_atomic(tmp.str("images/notes.txt"), "not an image");
  std::vector<uint8_t> mask(64, 0);
  mask[27] = 255;
  fs::create_directories(tmp.path() / "masks");
  write_png_gray8(tmp.str("masks/a.png"), 8, 8, mask);
  write_gray(tmp.path() / "masks" / "b_label.png", 8, 8, 0);  // a mask with no defect in it
  const auto samples = load_folder_dataset(tmp.str());
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(fs::path(samples[0].image_path).filename(), "a.png");
  EXPECT_EQ(fs::path(samples[1].image_path).filename(), "b.PNG");
  EXPECT_EQ(fs::path(samples[2].image_path).filename(), "c.png");
  EXPECT_EQ(samples[0].mask_path, tmp.str("masks/a.png"));
  EXPECT_TRUE(samples[0].defective);
  EXPECT_EQ(samples[1].mask_path, tmp.str("masks/b_label.png"));
  EXPECT_FALSE(samples[1].defective);
  EXPECT_TRUE(samples[2].mask_path.empty());
  EXPECT_FALSE(samples[2].defective);
}

TEST(FolderDataset, ErrorsNameThePath) {
  test::TempDir tmp;
  expect_error([&] { load_folder_dataset(tmp.str()); }, {tmp.str("images")});
  fs::create_directories(tmp.path() / "images");
  expect_error([&] { load_folder_dataset(tmp.str()); }, {tmp.str("images"), "no images"});
  write_gray(tmp.path() / "images" / "a.png", 8, 8, 50);
  fs::create_directories(tmp.path() / "masks");
  write_file_atomic(tmp.str("masks/a.png"), "garbage");
  expect_error([&] { load_folder_dataset(tmp.str()); }, {tmp.str("masks/a.png")});
}

}  // namespace
