// .npy I/O against numpy's own files (tests/data/, made by
// scripts/make_npy_fixture.py) and against hand-made corrupt files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <string>

#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/npy.h"

namespace fs = std::filesystem;
using namespace unetind;

namespace {

const std::string kData = UNETIND_TEST_DATA_DIR;

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("unetind_test_npy_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes `bytes` to a file and expects read_npy to fail with a message
  // naming the file and containing `what`.
  void expect_rejected(const std::string& name, const std::string& bytes, const std::string& what) {
    const std::string p = path(name);
    write_file_atomic(p, bytes);
    try {
      read_npy(p);
      ADD_FAILURE() << name << ": read_npy accepted a bad file";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }

  fs::path dir_;
};

// The 0.5 * i - 3 sequence of scripts/make_npy_fixture.py.
Tensor fixture_values() {
  Tensor t({2, 3, 4});
  for (int i = 0; i < 24; ++i) t.data[i] = 0.5f * i - 3.0f;
  return t;
}

// A v1.0 file with the given header dict, padded the way numpy pads it.
std::string npy_bytes(const std::string& dict, const std::string& data, char major = 1) {
  std::string header = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += major;
  out += '\0';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  if (major == 2) out += std::string(2, '\0');
  return out + header + data;
}

std::string float_bytes(std::initializer_list<float> values) {
  std::string out(values.size() * sizeof(float), '\0');
  std::memcpy(out.data(), values.begin(), out.size());
  return out;
}

}  // namespace

TEST_F(NpyTest, ReadsNumpyFile) {
  Tensor t = read_npy(kData + "/numpy_f32_2x3x4.npy");
  Tensor expected = fixture_values();
  EXPECT_EQ(t.shape, expected.shape);
  EXPECT_EQ(t.data, expected.data);
}

TEST_F(NpyTest, ReadsNumpyScalar) {
  Tensor t = read_npy(kData + "/numpy_f32_scalar.npy");
  EXPECT_TRUE(t.shape.empty());
  ASSERT_EQ(t.data.size(), 1u);
  EXPECT_EQ(t.data[0], 7.25f);
}

TEST_F(NpyTest, WritesTheSameBytesAsNumpy) {
  write_npy(path("mine.npy"), fixture_values());
  EXPECT_EQ(read_file(path("mine.npy")), read_file(kData + "/numpy_f32_2x3x4.npy"));
  write_npy(path("scalar.npy"), Tensor({}, 7.25f));
  EXPECT_EQ(read_file(path("scalar.npy")), read_file(kData + "/numpy_f32_scalar.npy"));
}

TEST_F(NpyTest, RoundTripsShapes) {
  for (const Shape& shape : {Shape{5}, Shape{1, 1, 1}, Shape{3, 0, 2}, Shape{2, 17, 33}, Shape{1, 2, 3, 4, 5, 6}}) {
    Tensor t(shape);
    for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = static_cast<float>(i) * 1.25f - 7.0f;
    write_npy(path("t.npy"), t);
    const std::string bytes = read_file(path("t.npy"));
    const size_t header_len = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
    EXPECT_EQ((10 + header_len) % 64, 0u) << shape_to_string(shape);
    EXPECT_EQ(bytes[10 + header_len - 1], '\n');
    Tensor back = read_npy(path("t.npy"));
    EXPECT_EQ(back.shape, shape);
    EXPECT_EQ(back.data, t.data);
  }
}

TEST_F(NpyTest, ReadsHandWrittenHeaders) {
  // Any key order, double quotes, extra spaces and a version 2.0 prefix are valid.
  write_file_atomic(path("a.npy"),
                    npy_bytes("{ \"shape\" : (2,) , 'fortran_order':False,'descr':'<f4'}", float_bytes({1.5f, -2.0f})));
  Tensor a = read_npy(path("a.npy"));
  EXPECT_EQ(a.shape, Shape({2}));
  EXPECT_EQ(a.data, std::vector<float>({1.5f, -2.0f}));

  write_file_atomic(path("b.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }",
                                             float_bytes({3.0f, 4.0f}), 2));
  Tensor b = read_npy(path("b.npy"));
  EXPECT_EQ(b.shape, Shape({1, 2}));
  EXPECT_EQ(b.data, std::vector<float>({3.0f, 4.0f}));
}

TEST_F(NpyTest, RejectsOtherDtypeAndFortranOrder) {
  for (auto [file, what] : {std::pair{"numpy_f64_2x3x4.npy", "'<f8'"}, std::pair{"numpy_f32_fortran.npy", "Fortran"}}) {
    const std::string p = kData + "/" + file;
    try {
      read_npy(p);
      ADD_FAILURE() << file << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }
}

TEST_F(NpyTest, RejectsMissingFile) {
  const std::string p = path("absent.npy");
  try {
    read_npy(p);
    ADD_FAILURE() << "missing file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST_F(NpyTest, RejectsCorruptFiles) {
  const std::string good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const std::string two = float_bytes({1.0f, 2.0f});
  expect_rejected("empty.npy", "", "bad magic");
  expect_rejected("magic.npy", "\x93NUMPX" + npy_bytes(good, two).substr(6), "bad magic");
  std::string v3 = npy_bytes(good, two);
  v3[6] = 3;
  expect_rejected("version.npy", v3, "version 3.0");
  expect_rejected("short_prefix.npy", std::string("\x93NUMPY\x01\x00\x10", 9), "truncated");
  expect_rejected("header_past_end.npy", npy_bytes(good, two).substr(0, 40), "past the end");
  expect_rejected("truncated_data.npy", npy_bytes(good, two).substr(0, 128 + 5), "does not match");
  expect_rejected("extra_data.npy", npy_bytes(good, two + float_bytes({3.0f})), "does not match");
  expect_rejected("big_shape.npy",
                  npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", two),
                  "does not match");
  expect_rejected("dtype.npy", npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", two), "'>f4'");
  expect_rejected("no_shape.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False}", two), "missing");
  expect_rejected("extra_key.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", two),
                  "unexpected key 'x'");
  expect_rejected("negative.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", two),
                  "dimension");
  expect_rejected("not_bool.npy", npy_bytes("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", two),
                  "True or False");
  expect_rejected("unclosed.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,", two), "expected");
  expect_rejected("garbage.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", two),
                  "trailing");
}
