// The HTML report, its loss-log reader, gallery selection and overlays.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/metrics.h"
#include "unetind/overlay.h"
#include "unetind/png.h"
#include "unetind/report.h"

namespace unetind {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("unetind_test_report_" + std::to_string(::getpid()))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// An independent decoder: the test must not trust the library's encoder.
std::string base64_decode(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  EXPECT_EQ(text.size() % 4, 0u);
  std::string out;
  for (std::size_t i = 0; i + 4 <= text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      if (text[i + k] == '=') {
        v[k] = 0;
        ++pad;
      } else {
        v[k] = value(text[i + k]);
        EXPECT_GE(v[k], 0) << "bad base64 character '" << text[i + k] << "'";
      }
    }
    uint32_t bits = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
    out += static_cast<char>(bits >> 16);
    if (pad < 2) out += static_cast<char>((bits >> 8) & 255);
    if (pad < 1) out += static_cast<char>(bits & 255);
  }
  return out;
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

EvalReport scored_report(const std::vector<float>& defective_scores, const std::vector<float>& clean_scores) {
  MetricsAccumulator acc;
  float zero = 0.0f;
  for (std::size_t i = 0; i < defective_scores.size(); ++i) {
    acc.add(std::to_string(i) + "_def.PNG", &defective_scores[i], &zero, 1, true);
  }
  for (std::size_t i = 0; i < clean_scores.size(); ++i) {
    acc.add(std::to_string(i) + "_ok.PNG", &clean_scores[i], &zero, 1, false);
  }
  return acc.finish();
}

// ------------------------------------------------------------ read_loss_curve

TEST(LossCurve, ReadsLinesWithLossAndSkipsOthers) {
  TempDir dir;
  std::string path = dir.file("metrics.jsonl");
  write_file_atomic(path,
                    "{\"step\":10,\"loss\":0.5,\"lr\":0.0001}\n"
                    "\n"
                    "{\"step\":15,\"eval_dice\":0.9}\r\n"
                    "{\"step\":20,\"loss\":0.25}\r\n"
                    "{\"step\":30,\"loss\":null}\n");
  std::vector<TrainPoint> curve = read_loss_curve(path);
  ASSERT_EQ(curve.size(), 3u);
  EXPECT_EQ(curve[0].step, 10);
  EXPECT_DOUBLE_EQ(curve[0].loss, 0.5);
  EXPECT_EQ(curve[1].step, 20);
  EXPECT_DOUBLE_EQ(curve[1].loss, 0.25);
  EXPECT_EQ(curve[2].step, 30);
  EXPECT_TRUE(std::isnan(curve[2].loss));
}

TEST(LossCurve, ErrorsNameFileAndLine) {
  TempDir dir;
  struct Case {
    std::string text, expect;
  };
  const Case cases[] = {
      {"{\"step\":1,\"loss\":0.5}\n{\"step\":2,\"loss\":\n", ":2: malformed JSON"},
      {"\n\n[1, 2]\n", ":3: expected a JSON object"},
      {"{\"step\":1,\"loss\":\"low\"}\n", ":1: \"loss\" is neither"},
      {"{\"step\":1,\"loss\":0.1}\n{\"loss\":0.1}\n", ":2: a line with \"loss\" needs an integer \"step\""},
      {"{\"step\":1.5,\"loss\":0.1}\n", ":1: a line with \"loss\" needs an integer \"step\""},
  };
  for (const Case& c : cases) {
    std::string path = dir.file("bad.jsonl");
    write_file_atomic(path, c.text);
    try {
      read_loss_curve(path);
      ADD_FAILURE() << "no error for: " << c.text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path + c.expect), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(read_loss_curve(dir.file("missing.jsonl")), Error);
}

// ------------------------------------------------------------ select_gallery

TEST(Gallery, PicksConfidentHitsFalseAlarmsAndClearestMisses) {
  // Defective: 0 -> 0.9, 1 -> 0.3, 2 -> 0.95, 3 -> 0.1, 4 -> 0.6;
  // clean: 5 -> 0.7, 6 -> 0.2, 7 -> 0.8. At 0.5: TP {2, 0, 4} by score down,
  // FP {7, 5}, FN {3, 1} by score up.
  EvalReport r = scored_report({0.9f, 0.3f, 0.95f, 0.1f, 0.6f}, {0.7f, 0.2f, 0.8f});
  std::vector<GalleryPick> picks = select_gallery(r, 0.5f, 2);
  struct Want {
    std::size_t index;
    GalleryCategory category;
  };
  const Want want[] = {{2, GalleryCategory::TruePositive},  {0, GalleryCategory::TruePositive},
                       {7, GalleryCategory::FalsePositive}, {5, GalleryCategory::FalsePositive},
                       {3, GalleryCategory::FalseNegative}, {1, GalleryCategory::FalseNegative}};
  ASSERT_EQ(picks.size(), std::size(want));
  for (std::size_t i = 0; i < picks.size(); ++i) {
    EXPECT_EQ(picks[i].image_index, want[i].index) << "pick " << i;
    EXPECT_EQ(picks[i].category, want[i].category) << "pick " << i;
  }
  // A score equal to the threshold is not called defective: image 4 at 0.6 is a miss.
  std::vector<GalleryPick> at_06 = select_gallery(r, 0.6f, 10);
  std::size_t misses = 0;
  for (const auto& p : at_06) misses += p.category == GalleryCategory::FalseNegative && p.image_index == 4;
  EXPECT_EQ(misses, 1u);
  EXPECT_TRUE(select_gallery(r, 0.5f, 0).empty());
  EXPECT_THROW(select_gallery(r, 0.5f, -1), Error);
  EXPECT_EQ(to_string(GalleryCategory::FalseNegative), "FN");
}

// ------------------------------------------------------------ make_overlay

TEST(Overlay, TintsAndOutlinesPredictionAndOutlinesLabel) {
  // 8x8 gray 100; prediction 0.9 on the 3x3 block at (2..4, 2..4) plus one
  // pixel exactly at the threshold; label on the 3x3 block at (3..5, 3..5).
  const int w = 8, h = 8;
  GrayImage image{w, h, std::vector<float>(w * h, 100.0f)};
  std::vector<float> prob(w * h, 0.0f), mask(w * h, 0.0f);
  for (int y = 2; y <= 4; ++y) {
    for (int x = 2; x <= 4; ++x) prob[y * w + x] = 0.9f;
  }
  prob[7 * w + 7] = 0.5f;
  for (int y = 3; y <= 5; ++y) {
    for (int x = 3; x <= 5; ++x) mask[y * w + x] = 1.0f;
  }
  RgbImage out = make_overlay(image, prob.data(), 0.5f, mask.data());
  ASSERT_EQ(out.width, w);
  ASSERT_EQ(out.height, h);
  ASSERT_EQ(out.pixels.size(), static_cast<std::size_t>(w * h * 3));
  auto rgb = [&](int x, int y) {
    const uint8_t* p = &out.pixels[(y * w + x) * 3];
    return std::vector<int>{p[0], p[1], p[2]};
  };
  EXPECT_EQ(rgb(0, 0), (std::vector<int>{100, 100, 100}));  // untouched
  EXPECT_EQ(rgb(7, 7), (std::vector<int>{100, 100, 100}));  // prob == threshold is not predicted
  EXPECT_EQ(rgb(2, 2), (std::vector<int>{255, 0, 0}));      // predicted outline
  EXPECT_EQ(rgb(2, 4), (std::vector<int>{255, 0, 0}));
  // Outlines are 1 px at this size. (3,3) is inside the prediction and on
  // the label's edge; (4,4) is on the prediction's edge and inside the label:
  // the label's outline is drawn over the prediction's, nothing else is.
  EXPECT_EQ(rgb(3, 3), (std::vector<int>{0, 255, 0}));
  EXPECT_EQ(rgb(4, 4), (std::vector<int>{255, 0, 0}));
  EXPECT_EQ(rgb(5, 5), (std::vector<int>{0, 255, 0}));  // label outline outside the prediction

  // Without a label, a predicted pixel away from the region's edge is tinted:
  // 100 * 0.6 + 255 * 0.4 = 162 red, 60 green and blue.
  std::vector<float> big(w * h, 0.0f);
  for (int y = 1; y <= 5; ++y) {
    for (int x = 1; x <= 5; ++x) big[y * w + x] = 0.9f;
  }
  RgbImage plain = make_overlay(image, big.data(), 0.5f, nullptr);
  const uint8_t* centre = &plain.pixels[(3 * w + 3) * 3];
  EXPECT_EQ(centre[0], 162);
  EXPECT_EQ(centre[1], 60);
  EXPECT_EQ(centre[2], 60);
  const uint8_t* edge = &plain.pixels[(1 * w + 3) * 3];
  EXPECT_EQ(edge[0], 255);
  EXPECT_EQ(edge[1], 0);
  const uint8_t* outside = &plain.pixels[(6 * w + 6) * 3];
  EXPECT_EQ(outside[0], 100);
}

TEST(Overlay, RejectsMismatchedImage) {
  GrayImage image{4, 4, std::vector<float>(15, 0.0f)};
  std::vector<float> prob(16, 0.0f);
  EXPECT_THROW(make_overlay(image, prob.data(), 0.5f, nullptr), Error);
  GrayImage empty;
  EXPECT_THROW(make_overlay(empty, prob.data(), 0.5f, nullptr), Error);
}

// ------------------------------------------------------------ render_html_report

ReportInputs sample_inputs(std::string* png_out) {
  ReportInputs in;
  in.title = "Class 1 <test> & co";
  in.eval = scored_report({0.9f, 0.3f, 0.95f, 0.1f, 0.6f}, {0.7f, 0.2f, 0.8f, 0.05f});
  for (int step = 0; step <= 100; step += 10) in.loss_curve.push_back({step, 1.0 / (1 + step)});
  in.run_info = {{"model", "tinyUNet"}, {"steps", 100}, {"note", "<script>alert(1)</script>"}};

  const int w = 16, h = 12;
  GrayImage image{w, h, std::vector<float>(w * h, 128.0f)};
  std::vector<float> prob(w * h, 0.0f);
  for (int x = 4; x < 10; ++x) prob[5 * w + x] = 0.9f;
  std::string png = encode_png_rgb8(make_overlay(image, prob.data(), 0.5f, nullptr));
  *png_out = png;
  for (const auto& pick : select_gallery(in.eval, 0.5f, 2)) {
    const ImageResult& result = in.eval.images[pick.image_index];
    in.gallery.push_back({result.file, result.is_defective, result.score, pick.category, png});
  }
  return in;
}

TEST(Report, IsSelfContainedHtmlWithAllSections) {
  std::string png;
  ReportInputs in = sample_inputs(&png);
  std::string html = render_html_report(in);

  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  for (const char* id : {"id=\"run\"", "id=\"metrics\"", "id=\"loss\"", "id=\"curves\"", "id=\"gallery\"",
                         "id=\"gallery-TP\"", "id=\"gallery-FP\"", "id=\"gallery-FN\""}) {
    EXPECT_NE(html.find(id), std::string::npos) << id;
  }
  // Loss, ROC and PR plots, each with a drawn line and axis labels.
  EXPECT_EQ(count(html, "<svg"), 3u);
  EXPECT_EQ(count(html, "</svg>"), 3u);
  EXPECT_GE(count(html, "<polyline"), 5u);  // loss; ROC + chance; PR + baseline
  EXPECT_NE(html.find("false positive rate"), std::string::npos);
  EXPECT_NE(html.find("precision"), std::string::npos);
  EXPECT_NE(html.find("loss (log scale)"), std::string::npos);
  // One metrics row a threshold.
  EXPECT_EQ(count(html, "<tr><td>"), kThresholds.size());
  EXPECT_NE(html.find("<td>0.125</td>"), std::string::npos);

  // Nothing fetched from anywhere, nothing run.
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  EXPECT_EQ(count(html, "src=\""), count(html, "src=\"data:image/png;base64,"));
  // Text from outside is escaped.
  EXPECT_NE(html.find("Class 1 &lt;test&gt; &amp; co"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;"), std::string::npos);
}

TEST(Report, EmbeddedPngsDecodeBack) {
  std::string png;
  ReportInputs in = sample_inputs(&png);
  ASSERT_EQ(in.gallery.size(), 6u);  // 2 TP, 2 FP, 2 FN
  std::string html = render_html_report(in);
  const std::string prefix = "src=\"data:image/png;base64,";
  std::size_t n = 0;
  TempDir dir;
  for (auto pos = html.find(prefix); pos != std::string::npos; pos = html.find(prefix, pos + 1)) {
    std::size_t begin = pos + prefix.size();
    std::string bytes = base64_decode(html.substr(begin, html.find('"', begin) - begin));
    EXPECT_EQ(bytes, png);
    ++n;
  }
  EXPECT_EQ(n, in.gallery.size());
  // And the bytes are a real PNG of the overlay's size.
  std::string path = dir.file("decoded.png");
  write_file_atomic(path, base64_decode(html.substr(html.find(prefix) + prefix.size(),
                                                    html.find('"', html.find(prefix) + prefix.size()) -
                                                        html.find(prefix) - prefix.size())));
  GrayImage decoded = read_png_gray(path);
  EXPECT_EQ(decoded.width, 16);
  EXPECT_EQ(decoded.height, 12);
}

TEST(Report, Base64PaddingForEveryLengthRemainder) {
  // Gallery payloads of 1, 2 and 3 bytes exercise both padding forms.
  ReportInputs in;
  in.title = "padding";
  in.eval = scored_report({0.9f}, {0.1f});
  for (std::string bytes : {std::string("\x01", 1), std::string("\xff\x00", 2), std::string("abc")}) {
    in.gallery = {{"x.png", true, 0.9f, GalleryCategory::TruePositive, bytes}};
    std::string html = render_html_report(in);
    const std::string prefix = "data:image/png;base64,";
    std::size_t begin = html.find(prefix) + prefix.size();
    std::string encoded = html.substr(begin, html.find('"', begin) - begin);
    EXPECT_EQ(encoded.size(), 4u);
    EXPECT_EQ(base64_decode(encoded), bytes);
  }
}

TEST(Report, DegradesWithoutDefectiveImagesOrLossLog) {
  ReportInputs in;
  in.title = "clean only";
  in.eval = scored_report({}, {0.2f, 0.7f});
  std::string html = render_html_report(in);
  EXPECT_NE(html.find("No training log was given"), std::string::npos);
  EXPECT_NE(html.find("the curves need both defective and clean images"), std::string::npos);
  EXPECT_NE(html.find("n/a"), std::string::npos);
  EXPECT_EQ(html.find("nan"), std::string::npos);
  EXPECT_EQ(html.find("inf<"), std::string::npos);
  EXPECT_EQ(count(html, "<svg"), 0u);
}

TEST(Report, LossCurveGoesLinearWhenALossIsNotPositive) {
  ReportInputs in;
  in.title = "linear";
  in.eval = scored_report({0.9f}, {0.1f});
  in.loss_curve = {{0, 0.5}, {10, 0.0}, {20, std::nan("")}};
  std::string html = render_html_report(in);
  EXPECT_EQ(html.find("log scale"), std::string::npos);
  EXPECT_NE(html.find("1 step(s) with a non-finite loss left out"), std::string::npos);
  EXPECT_EQ(html.find("nan"), std::string::npos);
}

}  // namespace
}  // namespace unetind
