// safetensors I/O: exact round trip, a file from an independent writer
// (scripts/make_safetensors_fixture.py) and one test per malformed case.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <string>

#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "test_util.h"
#include "unetind/safetensors.h"

namespace fs = std::filesystem;
using namespace unetind;

namespace {

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("unetind_test_safetensors_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes a file with the given JSON header and data section and expects
  // read_safetensors to fail with a message holding the path and each of `parts`.
  void expect_rejected(const std::string& header, const std::string& data, std::vector<std::string> parts) {
    const std::string p =
        path(::testing::UnitTest::GetInstance()->current_test_info()->name() + std::string(".safetensors"));
    write_file_atomic(p, file_bytes(header, data));
    expect_read_error(p, parts);
  }

  static void expect_read_error(const std::string& p, std::vector<std::string> parts) {
    parts.push_back(p);
    try {
      read_safetensors(p);
      ADD_FAILURE() << "read_safetensors accepted " << p;
    } catch (const Error& e) {
      for (const std::string& part : parts) EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  }

  static std::string file_bytes(const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(out.data(), &n, sizeof n);
    return out + header + data;
  }

  fs::path dir_;
};

const std::string kTwoFloats(8, '\0');

Tensor make_tensor(Shape shape, float start, float step) {
  Tensor t(std::move(shape));
  for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = start + step * static_cast<float>(i);
  return t;
}

}  // namespace

TEST_F(SafetensorsTest, RoundTripsExactlyWithMetadata) {
  std::vector<NamedTensor> tensors = {
      {"conv1.weight", make_tensor({3, 3, 1, 8}, -1.0f, 0.013f)},
      {"conv1.bias", make_tensor({8}, 0.5f, -0.25f)},
      {"empty", Tensor(Shape{0, 4})},
      {"scalar", Tensor({}, std::numeric_limits<float>::denorm_min())},
      {"a_last", make_tensor({2, 5}, 1e30f, -3e29f)},
  };
  tensors[1].tensor.data[3] = -0.0f;
  tensors[1].tensor.data[4] = std::numeric_limits<float>::infinity();
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"step", "2500"}, {"note", "ünïcode \"q\""}};
  write_safetensors(path("rt.safetensors"), tensors, metadata);

  SafetensorsFile file = read_safetensors(path("rt.safetensors"));
  EXPECT_EQ(file.metadata, metadata);
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(file.tensors[i].name, tensors[i].name);  // written order is file order
    EXPECT_EQ(file.tensors[i].tensor.shape, tensors[i].tensor.shape);
    ASSERT_EQ(file.tensors[i].tensor.data.size(), tensors[i].tensor.data.size());
    // Bit for bit (-0 and inf too); an empty tensor has no buffer to memcmp.
    const auto same_bits = [](float a, float b) { return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b); };
    EXPECT_TRUE(std::equal(file.tensors[i].tensor.data.begin(), file.tensors[i].tensor.data.end(),
                           tensors[i].tensor.data.begin(), same_bits))
        << tensors[i].name;
  }
  ASSERT_NE(file.find("conv1.bias"), nullptr);
  EXPECT_EQ(file.find("conv1.bias")->data[0], 0.5f);
  EXPECT_EQ(file.find("conv1"), nullptr);

  // The data section starts 8-byte aligned.
  const std::string bytes = read_file(path("rt.safetensors"));
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
}

TEST_F(SafetensorsTest, WritesNoMetadataWhenEmpty) {
  write_safetensors(path("plain.safetensors"), {{"x", make_tensor({2}, 1.0f, 1.0f)}}, {});
  SafetensorsFile file = read_safetensors(path("plain.safetensors"));
  EXPECT_TRUE(file.metadata.empty());
  EXPECT_EQ(read_file(path("plain.safetensors")).find("__metadata__"), std::string::npos);
}

TEST_F(SafetensorsTest, RejectsBadTensorsOnWrite) {
  Tensor wrong({2, 2});
  wrong.data.pop_back();
  for (const auto& tensors :
       {std::vector<NamedTensor>{{"w", wrong}}, std::vector<NamedTensor>{{"w", Tensor({1})}, {"w", Tensor({1})}},
        std::vector<NamedTensor>{{"__metadata__", Tensor({1})}}}) {
    EXPECT_THROW(write_safetensors(path("bad.safetensors"), tensors, {}), Error);
  }
  EXPECT_FALSE(fs::exists(path("bad.safetensors")));
}

TEST_F(SafetensorsTest, ReadsIndependentFixture) {
  SafetensorsFile file = read_safetensors(std::string(UNETIND_TEST_DATA_DIR) + "/mixed_dtypes.safetensors");
  ASSERT_EQ(file.tensors.size(), 3u);
  // Sorted by data offset, not by the order of the JSON keys.
  EXPECT_EQ(file.tensors[0].name, "weights_f16");
  EXPECT_EQ(file.tensors[1].name, "bias_f32");
  EXPECT_EQ(file.tensors[2].name, "scale_bf16");
  EXPECT_EQ(file.metadata.at("format"), "pt");
  EXPECT_EQ(file.metadata.at("source"), "make_safetensors_fixture.py");

  const Tensor& f16 = file.tensors[0].tensor;
  EXPECT_EQ(f16.shape, Shape({2, 4}));
  ASSERT_EQ(f16.data.size(), 8u);
  EXPECT_EQ(f16.data[0], -2.5f);
  EXPECT_EQ(f16.data[1], 65504.0f);
  EXPECT_EQ(f16.data[2], 5.9604644775390625e-08f);  // 2^-24, smallest subnormal
  EXPECT_EQ(f16.data[3], 6.0975551605224609e-05f);  // 1023 * 2^-24, largest subnormal
  EXPECT_EQ(f16.data[4], std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16.data[5], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16.data[6], 0.0f);
  EXPECT_TRUE(std::signbit(f16.data[6]));
  EXPECT_TRUE(std::isnan(f16.data[7]));

  const Tensor& f32 = file.tensors[1].tensor;
  EXPECT_EQ(f32.shape, Shape({2, 3}));
  EXPECT_EQ(f32.data, std::vector<float>({0.0f, -1.5f, 3.25f, 1e-30f, -65536.0f, 0.1f}));

  const Tensor& bf16 = file.tensors[2].tensor;
  EXPECT_EQ(bf16.shape, Shape({4}));
  EXPECT_EQ(bf16.data, std::vector<float>({1.0f, -2.0f, 3.140625f, -0.0078125f}));

  // Read as float32, but the file's own dtypes are kept.
  EXPECT_EQ(file.stored_dtypes, (std::map<std::string, std::string>{
                                    {"weights_f16", "F16"}, {"bias_f32", "F32"}, {"scale_bf16", "BF16"}}));
}

TEST_F(SafetensorsTest, InspectShowsTheStoredDtypes) {
  std::string out;
  ASSERT_EQ(test::run_cli("inspect " + std::string(UNETIND_TEST_DATA_DIR) + "/mixed_dtypes.safetensors", &out), 0)
      << out;
  EXPECT_NE(out.find("weights_f16\tF16\t[2, 4]"), std::string::npos) << out;
  EXPECT_NE(out.find("scale_bf16\tBF16\t[4]"), std::string::npos) << out;
  EXPECT_NE(out.find("bias_f32\tF32\t[2, 3]"), std::string::npos) << out;
}

TEST_F(SafetensorsTest, RejectsMissingFile) { expect_read_error(path("absent.safetensors"), {}); }

TEST_F(SafetensorsTest, RejectsFileShorterThan8Bytes) {
  write_file_atomic(path("short.safetensors"), std::string(5, '\0'));
  expect_read_error(path("short.safetensors"), {"too short"});
}

TEST_F(SafetensorsTest, RejectsHeaderLengthPastEnd) {
  std::string bytes = file_bytes("{}", "");
  bytes[0] = 3;  // claims a 3-byte header, but only 2 follow
  write_file_atomic(path("long.safetensors"), bytes);
  // The message compares like with like: the header's length with what
  // follows the 8 bytes that hold it (not with the whole file's size).
  expect_read_error(path("long.safetensors"), {"the header is 3 bytes long, but only 2 bytes follow"});
  bytes[0] = 0;
  bytes[7] = '\xff';  // a huge length must not wrap around
  write_file_atomic(path("huge.safetensors"), bytes);
  expect_read_error(path("huge.safetensors"), {"bytes long, but only 2 bytes follow"});
}

TEST_F(SafetensorsTest, RejectsInvalidJson) { expect_rejected("{\"w\": {\"dtype\": ", "", {"not valid JSON"}); }

TEST_F(SafetensorsTest, RejectsNonObjectHeader) { expect_rejected("[1, 2]", "", {"not a JSON object"}); }

TEST_F(SafetensorsTest, RejectsNonObjectEntry) { expect_rejected(R"({"w": 3})", "", {"'w'", "not a JSON object"}); }

TEST_F(SafetensorsTest, RejectsMissingDtype) {
  expect_rejected(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", kTwoFloats, {"'w'", "'dtype'"});
}

TEST_F(SafetensorsTest, RejectsMissingShape) {
  expect_rejected(R"({"w": {"dtype": "F32", "data_offsets": [0, 8]}})", kTwoFloats, {"'w'", "'shape'"});
}

TEST_F(SafetensorsTest, RejectsMissingDataOffsets) {
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [2]}})", kTwoFloats, {"'w'", "'data_offsets'"});
}

TEST_F(SafetensorsTest, RejectsUnsupportedDtype) {
  expect_rejected(R"({"w": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", kTwoFloats,
                  {"'w'", "unsupported dtype 'I64'"});
}

TEST_F(SafetensorsTest, RejectsBadShapeValues) {
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", kTwoFloats,
                  {"'w'", "shape dimension"});
}

TEST_F(SafetensorsTest, RejectsSizeMismatch) {
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", kTwoFloats,
                  {"'w'", "does not match"});
  // F16 elements are 2 bytes: 4 of them fill the 8 bytes, 2 do not.
  expect_rejected(R"({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 8]}})", kTwoFloats,
                  {"'w'", "does not match"});
}

TEST_F(SafetensorsTest, RejectsShapeProductOverflow) {
  // 2^32 * 2^32 * 4 wraps to 0 in 64 bits, which would "match" an empty range.
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", "",
                  {"'w'", "does not match"});
}

TEST_F(SafetensorsTest, RejectsOffsetsPastData) {
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", kTwoFloats,
                  {"'w'", "past the data section"});
}

TEST_F(SafetensorsTest, RejectsBeginAfterEnd) {
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", kTwoFloats,
                  {"'w'", "begin after end"});
}

TEST_F(SafetensorsTest, RejectsOverlappingTensors) {
  expect_rejected(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                  kTwoFloats, {"'a'", "'b'", "overlap"});
}

TEST_F(SafetensorsTest, RejectsDuplicateNames) {
  expect_rejected(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                      "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                  kTwoFloats, {"'w'", "twice"});
}

TEST_F(SafetensorsTest, RejectsNonStringMetadata) {
  expect_rejected(R"({"__metadata__": {"epoch": 3}})", "", {"__metadata__", "'epoch'", "not a string"});
  expect_rejected(R"({"__metadata__": ["x"]})", "", {"__metadata__", "not a JSON object"});
}
