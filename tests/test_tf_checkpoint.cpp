// The TensorFlow tensor-bundle reader on real SavedModel variables (tensorflow/
// serving's test models, ../shared/fixtures/tf_checkpoint) and on bundles our
// own minimal writer produces; corrupt files; `import` and `inspect`.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/crc32c.h"
#include "test_util.h"
#include "tf_bundle_writer.h"
#include "unetind/atomic_file.h"
#include "unetind/error.h"
#include "unetind/model.h"
#include "unetind/npy.h"
#include "unetind/png.h"
#include "unetind/tf_checkpoint.h"

namespace unetind {
namespace {

namespace fs = std::filesystem;
using test::BundleWriteOptions;
using test::TempDir;
using test::TfBundleWriter;

// ---------------------------------------------------------------- crc32c

TEST(Crc32c, KnownVectors) {
  // RFC 3720 appendix B.4 and the usual check value.
  EXPECT_EQ(crc32c::value("123456789"), 0xe3069283u);
  EXPECT_EQ(crc32c::value(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(crc32c::value(std::string(32, '\xff')), 0x62a8ab43u);
  std::string ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<char>(i);
  EXPECT_EQ(crc32c::value(ascending), 0x46dd794eu);
}

TEST(Crc32c, ExtendEqualsWhole) {
  const std::string text = "The quick brown fox jumps over the lazy dog, twice over.";
  for (size_t split = 0; split <= text.size(); ++split)
    EXPECT_EQ(crc32c::extend(crc32c::value(text.substr(0, split)), text.data() + split, text.size() - split),
              crc32c::value(text));
}

TEST(Crc32c, MaskRoundTrip) {
  for (uint32_t c : {0u, 1u, 0xe3069283u, 0xffffffffu}) {
    EXPECT_EQ(crc32c::unmask(crc32c::mask(c)), c);
    EXPECT_NE(crc32c::mask(c), c);
  }
}

// ---------------------------------------------------------------- real fixtures

std::string fixture_dir() {
  const std::string shared = test::shared_dir();
  if (shared.empty()) return "";
  const std::string dir = shared + "/fixtures/tf_checkpoint";
  std::error_code ec;
  return fs::is_directory(dir, ec) ? dir : "";
}

#define REQUIRE_FIXTURES()                    \
  const std::string fixtures = fixture_dir(); \
  if (fixtures.empty()) GTEST_SKIP() << "no ../shared/fixtures/tf_checkpoint (a user's clone)"

std::string model_dir(const std::string& fixtures, const std::string& model) {
  return fixtures + "/" + model + "/00000123";
}

// The table of ../shared/fixtures/tf_checkpoint/SOURCE.md.
struct ExpectedTensor {
  std::string name;
  TfDtype dtype;
  Shape shape;
  int64_t offset;
  int64_t size;
  uint32_t masked_crc;
  float value;  // every float tensor there holds a single value
};

const std::vector<std::pair<std::string, std::vector<ExpectedTensor>>>& expected_fixtures() {
  static const std::vector<std::pair<std::string, std::vector<ExpectedTensor>>> table = {
      {"saved_model_half_plus_two_cpu",
       {{"a", TfDtype::Float, {}, 0, 4, 0x1f273806, 0.5f},
        {"a2", TfDtype::Float, {}, 4, 4, 0x1f273806, 0.5f},
        {"b", TfDtype::Float, {}, 8, 4, 0x4f78fd10, 2.0f},
        {"c", TfDtype::Float, {}, 12, 4, 0xc382d6ef, 3.0f},
        {"c2", TfDtype::Float, {}, 16, 4, 0xc382d6ef, 3.0f}}},
      {"saved_model_half_plus_three",
       {{"a", TfDtype::Float, {}, 0, 4, 0x1f273806, 0.5f},
        {"b", TfDtype::Float, {}, 4, 4, 0xc382d6ef, 3.0f},
        {"c", TfDtype::Float, {}, 8, 4, 0xc382d6ef, 3.0f}}},
      {"saved_model_counter", {{"counter", TfDtype::Float, {}, 0, 4, 0x3a117ba6, 0.0f}}},
      {"saved_model_half_plus_two_mkl",
       {{"a", TfDtype::Float, {}, 0, 4, 0x1f273806, 0.5f},
        {"b", TfDtype::Float, {}, 4, 4, 0x4f78fd10, 2.0f},
        {"c", TfDtype::Float, {}, 8, 4, 0xc382d6ef, 3.0f},
        {"conv2d/bias", TfDtype::Float, {1}, 12, 4, 0x3a117ba6, 0.0f},
        {"conv2d/kernel", TfDtype::Float, {1, 1, 1, 1}, 16, 4, 0x8071c907, -0.5223959684371948f},
        {"conv2d_1/bias", TfDtype::Float, {1}, 20, 4, 0x3a117ba6, 0.0f},
        {"conv2d_1/kernel", TfDtype::Float, {1, 1, 1, 1}, 24, 4, 0x33bb5594, -1.0451120138168335f},
        {"conv2d_2/bias", TfDtype::Float, {1}, 28, 4, 0x3a117ba6, 0.0f},
        {"conv2d_2/kernel", TfDtype::Float, {1, 1, 1, 1}, 32, 4, 0xff6a0eeb, 1.577943205833435f}}},
      {"saved_model_half_plus_two_tf2_cpu",
       {{"_CHECKPOINTABLE_OBJECT_GRAPH", TfDtype::String, {}, 12, 619, 0x47b7d190, 0.0f},
        {"a/.ATTRIBUTES/VARIABLE_VALUE", TfDtype::Float, {}, 0, 4, 0x1f273806, 0.5f},
        {"b/.ATTRIBUTES/VARIABLE_VALUE", TfDtype::Float, {}, 4, 4, 0x4f78fd10, 2.0f},
        {"c/.ATTRIBUTES/VARIABLE_VALUE", TfDtype::Float, {}, 8, 4, 0xc382d6ef, 3.0f}}},
  };
  return table;
}

TEST(TfCheckpointFixtures, AllFiveModelsReadAsSourceMdSays) {
  REQUIRE_FIXTURES();
  for (const auto& [model, expected] : expected_fixtures()) {
    SCOPED_TRACE(model);
    const TfCheckpoint ckpt(model_dir(fixtures, model));
    EXPECT_EQ(ckpt.prefix(), model_dir(fixtures, model) + "/variables/variables");
    EXPECT_EQ(ckpt.num_shards(), 1);
    ASSERT_EQ(ckpt.tensors().size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      const TfTensorInfo& t = ckpt.tensors()[i];
      const ExpectedTensor& e = expected[i];
      SCOPED_TRACE(e.name);
      EXPECT_EQ(t.name, e.name);
      EXPECT_EQ(t.dtype, e.dtype);
      EXPECT_EQ(t.shape, e.shape);
      EXPECT_EQ(t.shard, 0);
      EXPECT_EQ(t.offset, e.offset);
      EXPECT_EQ(t.size, e.size);
      EXPECT_EQ(t.masked_crc32c, e.masked_crc);
      if (e.dtype == TfDtype::Float) {
        const Tensor value = ckpt.read_float(e.name);
        EXPECT_EQ(value.shape, e.shape);
        ASSERT_EQ(value.data.size(), 1u);
        EXPECT_EQ(value.data[0], e.value);
      }
    }
  }
}

TEST(TfCheckpointFixtures, StringTensorOfTheTf2Model) {
  REQUIRE_FIXTURES();
  const TfCheckpoint ckpt(model_dir(fixtures, "saved_model_half_plus_two_tf2_cpu"));
  const std::vector<std::string> graph = ckpt.read_strings("_CHECKPOINTABLE_OBJECT_GRAPH");
  ASSERT_EQ(graph.size(), 1u);
  EXPECT_EQ(graph[0].size(), 613u);  // SOURCE.md: varint length 613, 2 + 4 + 613 = 619 bytes
  // A serialised TrackableObjectGraph names the variables' checkpoint keys.
  for (const char* key :
       {"a/.ATTRIBUTES/VARIABLE_VALUE", "b/.ATTRIBUTES/VARIABLE_VALUE", "c/.ATTRIBUTES/VARIABLE_VALUE"})
    EXPECT_NE(graph[0].find(key), std::string::npos) << key;
  EXPECT_THROW(ckpt.read_float("_CHECKPOINTABLE_OBJECT_GRAPH"), Error);
  EXPECT_THROW(ckpt.read_strings("a/.ATTRIBUTES/VARIABLE_VALUE"), Error);
}

TEST(TfCheckpointFixtures, Tf2ObjectGraphNamesTheVariables) {
  REQUIRE_FIXTURES();
  const std::map<std::string, std::string> names =
      tf2_variable_names(TfCheckpoint(model_dir(fixtures, "saved_model_half_plus_two_tf2_cpu")));
  EXPECT_EQ(names, (std::map<std::string, std::string>{{"a/.ATTRIBUTES/VARIABLE_VALUE", "a"},
                                                       {"b/.ATTRIBUTES/VARIABLE_VALUE", "b"},
                                                       {"c/.ATTRIBUTES/VARIABLE_VALUE", "c"}}));
  EXPECT_TRUE(tf2_variable_names(TfCheckpoint(model_dir(fixtures, "saved_model_half_plus_two_mkl"))).empty());
}

TEST(TfCheckpointFixtures, PathForms) {
  REQUIRE_FIXTURES();
  const std::string dir = model_dir(fixtures, "saved_model_half_plus_three");
  const std::string prefix = dir + "/variables/variables";
  EXPECT_EQ(resolve_tf_checkpoint_prefix(dir), prefix);
  EXPECT_EQ(resolve_tf_checkpoint_prefix(prefix), prefix);
  EXPECT_EQ(resolve_tf_checkpoint_prefix(prefix + ".index"), prefix);
  EXPECT_EQ(TfCheckpoint(prefix + ".index").read_float("b").data[0], 3.0f);
  try {
    resolve_tf_checkpoint_prefix(dir + "/variables");
    FAIL() << "a directory with neither SavedModel layout nor checkpoint file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/variables"), std::string::npos) << e.what();
  }
  EXPECT_THROW(resolve_tf_checkpoint_prefix(dir + "/nothing_here"), Error);
}

TEST(TfCheckpointFixtures, UnknownTensorNameIsAnError) {
  REQUIRE_FIXTURES();
  const TfCheckpoint ckpt(model_dir(fixtures, "saved_model_counter"));
  EXPECT_EQ(ckpt.find("nope"), nullptr);
  ASSERT_NE(ckpt.find("counter"), nullptr);
  EXPECT_THROW(ckpt.read_float("nope"), Error);
}

// ---------------------------------------------------------------- corrupt files

// A copy of a fixture's variables/ that a test may damage.
std::string copy_variables(const std::string& fixtures, const std::string& model, const TempDir& tmp) {
  fs::copy(model_dir(fixtures, model) + "/variables", tmp.str("variables"));
  return tmp.str("variables/variables");
}

void flip_byte(const std::string& path, size_t offset) {
  std::string bytes = read_file(path);
  ASSERT_LT(offset, bytes.size());
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x10);
  write_file_atomic(path, bytes);
}

// Runs `read`, which must throw an Error whose message has every one of `parts`.
template <typename F>
void expect_error(F read, const std::vector<std::string>& parts) {
  try {
    read();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

void read_all(const std::string& prefix) {
  const TfCheckpoint ckpt(prefix);
  for (const TfTensorInfo& t : ckpt.tensors()) {
    if (t.dtype == TfDtype::Float)
      ckpt.read_float(t.name);
    else
      ckpt.read_strings(t.name);
  }
}

TEST(TfCheckpointCorrupt, TruncatedIndex) {
  REQUIRE_FIXTURES();
  for (const char* model : {"saved_model_half_plus_three", "saved_model_half_plus_two_cpu"}) {
    TempDir tmp;
    const std::string prefix = copy_variables(fixtures, model, tmp);
    const std::string index = prefix + ".index";
    const std::string bytes = read_file(index);
    // Cut inside the footer (no magic), and to less than a footer.
    write_file_atomic(index, bytes.substr(0, bytes.size() - 10));
    expect_error([&] { TfCheckpoint c(prefix); }, {index, "magic"});
    write_file_atomic(index, bytes.substr(0, 20));
    expect_error([&] { TfCheckpoint c(prefix); }, {index, "truncated"});
    // Blocks cut away but a footer kept: the handles point past the end.
    write_file_atomic(index, bytes.substr(bytes.size() - 48));
    expect_error([&] { TfCheckpoint c(prefix); }, {index, "runs past the end"});
  }
}

TEST(TfCheckpointCorrupt, BadMagic) {
  REQUIRE_FIXTURES();
  TempDir tmp;
  const std::string prefix = copy_variables(fixtures, "saved_model_counter", tmp);
  const std::string index = prefix + ".index";
  flip_byte(index, read_file(index).size() - 1);
  expect_error([&] { TfCheckpoint c(prefix); }, {index, "magic"});
}

TEST(TfCheckpointCorrupt, IndexBlockCrcMismatch) {
  REQUIRE_FIXTURES();
  for (const char* model : {"saved_model_half_plus_two_mkl", "saved_model_half_plus_two_cpu"}) {
    TempDir tmp;
    const std::string prefix = copy_variables(fixtures, model, tmp);
    flip_byte(prefix + ".index", 3);  // inside the data block
    expect_error([&] { TfCheckpoint c(prefix); }, {prefix + ".index", "crc32c mismatch"});
  }
}

TEST(TfCheckpointCorrupt, TensorCrcMismatch) {
  REQUIRE_FIXTURES();
  TempDir tmp;
  const std::string prefix = copy_variables(fixtures, "saved_model_half_plus_two_mkl", tmp);
  const std::string shard = prefix + ".data-00000-of-00001";
  flip_byte(shard, 17);  // conv2d/kernel lives at bytes 16..19
  const TfCheckpoint ckpt(prefix);
  EXPECT_EQ(ckpt.read_float("conv2d/bias").data[0], 0.0f);  // its neighbours are intact
  expect_error([&] { ckpt.read_float("conv2d/kernel"); }, {shard, "conv2d/kernel", "crc32c mismatch"});
}

TEST(TfCheckpointCorrupt, StringTensorCrcMismatch) {
  REQUIRE_FIXTURES();
  TempDir tmp;
  const std::string prefix = copy_variables(fixtures, "saved_model_half_plus_two_tf2_cpu", tmp);
  const std::string shard = prefix + ".data-00000-of-00001";
  flip_byte(shard, 12 + 6 + 100);  // inside the string's bytes
  expect_error([&] { TfCheckpoint(prefix).read_strings("_CHECKPOINTABLE_OBJECT_GRAPH"); },
               {shard, "_CHECKPOINTABLE_OBJECT_GRAPH", "crc32c mismatch"});
  flip_byte(shard, 12 + 6 + 100);
  flip_byte(shard, 12);  // the varint length
  expect_error([&] { TfCheckpoint(prefix).read_strings("_CHECKPOINTABLE_OBJECT_GRAPH"); },
               {shard, "_CHECKPOINTABLE_OBJECT_GRAPH"});
}

TEST(TfCheckpointCorrupt, MissingAndTruncatedShard) {
  REQUIRE_FIXTURES();
  TempDir tmp;
  const std::string prefix = copy_variables(fixtures, "saved_model_half_plus_three", tmp);
  const std::string shard = prefix + ".data-00000-of-00001";
  const std::string bytes = read_file(shard);
  write_file_atomic(shard, bytes.substr(0, 6));
  expect_error([&] { read_all(prefix); }, {shard, "'b'", "truncated"});
  fs::remove(shard);
  const TfCheckpoint ckpt(prefix);  // the index alone can still be listed
  EXPECT_EQ(ckpt.tensors().size(), 3u);
  expect_error([&] { ckpt.read_float("a"); }, {shard, "cannot open data shard 0 of 1"});
}

// ---------------------------------------------------------------- our writer

Tensor ramp(const Shape& shape, float start) {
  Tensor t(shape);
  for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = start + 0.25f * static_cast<float>(i);
  return t;
}

TEST(TfBundleWriter, RoundTripOverShardsBlocksAndCompression) {
  TfBundleWriter writer;
  std::vector<std::pair<std::string, Tensor>> floats;
  for (int i = 0; i < 40; ++i) {
    const std::string name = "scope_" + std::to_string(i % 3) + "/layer_" + std::to_string(i) + "/kernel";
    floats.emplace_back(name, ramp({3, 1, static_cast<int64_t>(i % 4 + 1), 2}, static_cast<float>(i)));
    writer.add_float(name, floats.back().second);
  }
  floats.emplace_back("empty", Tensor(Shape{0, 5}));
  writer.add_float("empty", floats.back().second);
  const std::vector<std::string> strings = {"", "x", std::string(300, 'q'), std::string("nul\0byte", 8)};
  writer.add_strings("strings", {2, 2}, strings);
  writer.add_int64("global_step", {}, {2500});

  for (const BundleWriteOptions& options :
       {BundleWriteOptions{}, BundleWriteOptions{3, false, 64, 1}, BundleWriteOptions{2, true, 200, 4},
        BundleWriteOptions{1, true, 1 << 20, 16}}) {
    SCOPED_TRACE("shards " + std::to_string(options.num_shards) + ", block " + std::to_string(options.block_size));
    TempDir tmp;
    writer.write(tmp.str("model.ckpt-7"), options);
    const TfCheckpoint ckpt(tmp.str("model.ckpt-7"));
    EXPECT_EQ(ckpt.num_shards(), options.num_shards);
    EXPECT_EQ(ckpt.tensors().size(), floats.size() + 2);
    for (const auto& [name, tensor] : floats) {
      const Tensor read = ckpt.read_float(name);
      EXPECT_EQ(read.shape, tensor.shape) << name;
      EXPECT_EQ(read.data, tensor.data) << name;
    }
    EXPECT_EQ(ckpt.read_strings("strings"), strings);
    EXPECT_EQ(ckpt.find("strings")->shape, (Shape{2, 2}));
    EXPECT_EQ(ckpt.find("global_step")->dtype, TfDtype::Int64);
    for (size_t i = 1; i < ckpt.tensors().size(); ++i) EXPECT_LT(ckpt.tensors()[i - 1].name, ckpt.tensors()[i].name);
  }
}

TEST(TfBundleWriter, TrainingDirectoryWithCheckpointFile) {
  TempDir tmp;
  TfBundleWriter writer;
  writer.add_float("w", ramp({2}, 1.0f));
  writer.write(tmp.str("model.ckpt-2500"));
  write_file_atomic(tmp.str("checkpoint"),
                    "model_checkpoint_path: \"model.ckpt-2500\"\nall_model_checkpoint_paths: \"model.ckpt-2500\"\n");
  EXPECT_EQ(resolve_tf_checkpoint_prefix(tmp.str()), tmp.str("model.ckpt-2500"));
  EXPECT_EQ(TfCheckpoint(tmp.str()).read_float("w").data, (std::vector<float>{1.0f, 1.25f}));
  // An absolute path from elsewhere (NVIDIA's container writes /results/...) falls back to this directory.
  write_file_atomic(tmp.str("checkpoint"), "model_checkpoint_path: \"/results/model.ckpt-2500\"\n");
  EXPECT_EQ(resolve_tf_checkpoint_prefix(tmp.str()), tmp.str("model.ckpt-2500"));
  // The `checkpoint` file itself stands for its directory.
  EXPECT_EQ(resolve_tf_checkpoint_prefix(tmp.str("checkpoint")), tmp.str("model.ckpt-2500"));
  EXPECT_TRUE(is_tf_checkpoint_path(tmp.str("checkpoint")));
  EXPECT_TRUE(is_tf_checkpoint_path(tmp.str("model.ckpt-2500")));
  EXPECT_FALSE(is_tf_checkpoint_path(tmp.str("model.ckpt-2500.data-00000-of-00001")));
  write_file_atomic(tmp.str("checkpoint"), "model_checkpoint_path: \"model.ckpt-9\"\n");
  expect_error([&] { resolve_tf_checkpoint_prefix(tmp.str()); }, {tmp.str("model.ckpt-9.index")});
}

TEST(TfBundleWriter, BrokenObjectGraphIsNamed) {
  TempDir tmp;
  TfBundleWriter writer;  // an object graph that is not a protobuf message
  writer.add_strings("_CHECKPOINTABLE_OBJECT_GRAPH", {}, {"\x0a\xff\xff\xff\xff\x0f"});
  writer.write(tmp.str("broken"));
  expect_error([&] { tf2_variable_names(TfCheckpoint(tmp.str("broken"))); },
               {tmp.str("broken.data-00000-of-00001"), "object graph"});
}

TEST(TfBundleWriter, ShardCountMismatchNamesTheMissingShard) {
  TempDir tmp;
  TfBundleWriter writer;
  writer.add_float("a", ramp({1}, 0.f));
  writer.add_float("b", ramp({1}, 1.f));
  writer.write(tmp.str("ckpt"), {2, false, 4096, 16});
  fs::remove(tmp.str("ckpt.data-00001-of-00002"));
  const TfCheckpoint ckpt(tmp.str("ckpt"));
  EXPECT_EQ(ckpt.read_float("a").data[0], 0.f);
  expect_error([&] { ckpt.read_float("b"); }, {tmp.str("ckpt.data-00001-of-00002"), "shard 1 of 2", "'b'"});
}

// ---------------------------------------------------------------- import

// NVIDIA's checkpoint: the model's variables plus centered-RMSProp slots for
// each, global_step, and AMP's loss-scale state; `prefix` in front of the
// model's names, as a module gives them.
void write_nvidia_checkpoint(const Parameters& params, const std::string& ckpt_prefix, const std::string& prefix,
                             const BundleWriteOptions& options = {}) {
  TfBundleWriter writer;
  for (const NamedTensor& t : params.tensors) {
    writer.add_float(prefix + t.name, t.tensor);
    for (const char* slot : {"/RMSProp", "/RMSProp_1", "/RMSProp_2"})
      writer.add_float(prefix + t.name + slot, Tensor(t.tensor.shape, 0.5f));
  }
  writer.add_int64("global_step", {}, {2500});
  writer.add_float("current_loss_scale", Tensor(Shape{}, 32768.f));
  writer.add_int64("good_steps", {}, {17});
  writer.write(ckpt_prefix, options);
}

Parameters test_parameters() { return init_parameters(ModelConfig{}, Initializer::HeUniform, /*seed=*/1234); }

void expect_same_parameters(const Parameters& a, const Parameters& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].tensor.shape, b.tensors[i].tensor.shape);
    EXPECT_EQ(a.tensors[i].tensor.data, b.tensors[i].tensor.data) << a.tensors[i].name;
  }
}

TEST(TfImport, NvidiaNamingWithModulePrefixAndOptimiserSlots) {
  const Parameters params = test_parameters();
  ASSERT_EQ(params.tensors.size(), 46u);
  for (const std::string prefix : {"", "module/"}) {
    SCOPED_TRACE("prefix '" + prefix + "'");
    TempDir tmp;
    write_nvidia_checkpoint(params, tmp.str("model.ckpt-2500"), prefix, {2, true, 1024, 16});
    const TfImport imported = import_tf_checkpoint(tmp.str("model.ckpt-2500"), ModelConfig{});
    EXPECT_EQ(imported.checkpoint_prefix, tmp.str("model.ckpt-2500"));
    EXPECT_EQ(imported.name_prefix, prefix);
    EXPECT_EQ(imported.skipped.size(), 46u * 3 + 3);
    expect_same_parameters(imported.parameters, params);
  }
}

TEST(TfImport, MissingWrongShapeAndUnexpectedTensorsAreNamed) {
  const Parameters params = test_parameters();
  const std::string dropped = "UNet_v1/ouputs_block/conv2d_2/kernel";
  {
    TempDir tmp;
    Parameters partial = params;
    std::erase_if(partial.tensors, [&](const NamedTensor& t) { return t.name == dropped; });
    write_nvidia_checkpoint(partial, tmp.str("ckpt"), "module/");
    expect_error([&] { import_tf_checkpoint(tmp.str("ckpt"), ModelConfig{}); },
                 {tmp.str("ckpt.index"), "missing", dropped});
  }
  {
    TempDir tmp;
    Parameters reshaped = params;
    reshaped.tensors[0].tensor.shape = {3, 3, 2, 16};
    write_nvidia_checkpoint(reshaped, tmp.str("ckpt"), "");
    expect_error([&] { import_tf_checkpoint(tmp.str("ckpt"), ModelConfig{}); },
                 {tmp.str("ckpt.index"), params.tensors[0].name, "[3, 3, 2, 16]"});
  }
  {
    TempDir tmp;
    Parameters extra = params;
    extra.tensors.push_back({"UNet_v1/extra_block/conv2d/kernel", Tensor(Shape{1, 1, 1, 1})});
    write_nvidia_checkpoint(extra, tmp.str("ckpt"), "");
    expect_error([&] { import_tf_checkpoint(tmp.str("ckpt"), ModelConfig{}); },
                 {tmp.str("ckpt.index"), "unexpected", "UNet_v1/extra_block/conv2d/kernel"});
  }
  {
    TempDir tmp;
    TfBundleWriter writer;
    for (const NamedTensor& t : params.tensors) writer.add_float((t.name[8] == 'i' ? "a/" : "b/") + t.name, t.tensor);
    writer.write(tmp.str("ckpt"));
    expect_error([&] { import_tf_checkpoint(tmp.str("ckpt"), ModelConfig{}); }, {tmp.str("ckpt.index"), "prefixes"});
  }
}

TEST(TfImport, OptimizerStateOnRequest) {
  const Parameters params = test_parameters();
  TempDir tmp;
  write_nvidia_checkpoint(params, tmp.str("model.ckpt-2500"), "module/");
  const TfImport plain = import_tf_checkpoint(tmp.str("model.ckpt-2500"), ModelConfig{});
  EXPECT_TRUE(plain.optimizer_slots.empty());
  EXPECT_FALSE(plain.global_step);
  const TfImport state = import_tf_checkpoint(tmp.str("model.ckpt-2500"), ModelConfig{}, true);
  EXPECT_EQ(state.global_step, 2500);
  ASSERT_EQ(state.optimizer_slots.size(), 46u * 3);
  EXPECT_EQ(state.optimizer_slots[0].name, "UNet_v1/bottleneck_block/conv2d/bias/RMSProp");  // module/ stripped
  EXPECT_EQ(state.optimizer_slots[0].tensor.data, std::vector<float>(256, 0.5f));
}

TEST(TfImport, LoadWeightsTakesEitherFormat) {
  const Parameters params = test_parameters();
  TempDir tmp;
  write_nvidia_checkpoint(params, tmp.str("model.ckpt-1"), "");
  save_parameters(tmp.str("w.safetensors"), params);
  expect_same_parameters(load_weights(tmp.str("model.ckpt-1"), ModelConfig{}), params);
  expect_same_parameters(load_weights(tmp.str("w.safetensors"), ModelConfig{}), params);
  const ModelConfig leaky{Variant::TinyUNet, Activation::LeakyRelu};
  expect_error([&] { load_weights(tmp.str("w.safetensors"), leaky); }, {tmp.str("w.safetensors"), "relu", "leaky_relu"});
  expect_error([&] { load_weights(tmp.str("nothing.safetensors"), ModelConfig{}); }, {tmp.str("nothing.safetensors")});
}

TEST(TfImport, RealNonUnetCheckpointIsRejectedClearly) {
  REQUIRE_FIXTURES();
  const std::string dir = model_dir(fixtures, "saved_model_half_plus_two_mkl");
  expect_error([&] { import_tf_checkpoint(dir, ModelConfig{}); }, {dir + "/variables/variables.index", "missing"});
}

// ---------------------------------------------------------------- CLI

TEST(TfCli, InspectListsCheckpointAndSafetensors) {
  REQUIRE_FIXTURES();
  std::string out;
  ASSERT_EQ(test::run_cli("inspect " + model_dir(fixtures, "saved_model_half_plus_two_mkl"), &out), 0) << out;
  EXPECT_NE(out.find("conv2d/kernel\tDT_FLOAT\t[1, 1, 1, 1]\n"), std::string::npos) << out;
  EXPECT_NE(out.find("a\tDT_FLOAT\t[]\n"), std::string::npos) << out;
  ASSERT_EQ(
      test::run_cli(
          "inspect " + model_dir(fixtures, "saved_model_half_plus_two_tf2_cpu") + "/variables/variables.index", &out),
      0)
      << out;
  EXPECT_NE(out.find("_CHECKPOINTABLE_OBJECT_GRAPH\tDT_STRING\t[]\n"), std::string::npos) << out;

  TempDir tmp;
  save_parameters(tmp.str("w.safetensors"), test_parameters());
  ASSERT_EQ(test::run_cli("inspect " + tmp.str("w.safetensors"), &out), 0) << out;
  EXPECT_NE(out.find("UNet_v1/input_block/conv2d/kernel\tF32\t[3, 3, 1, 32]\n"), std::string::npos) << out;
  EXPECT_NE(out.find("46 tensors"), std::string::npos) << out;
}

TEST(TfCli, ImportWritesWhatLoadParametersReads) {
  const Parameters params = test_parameters();
  TempDir tmp;
  write_nvidia_checkpoint(params, tmp.str("model.ckpt-2500"), "module/");
  std::string out;
  ASSERT_EQ(test::run_cli("import --tf-checkpoint " + tmp.str("model.ckpt-2500") + " --out " + tmp.str("w.safetensors"),
                          &out),
            0)
      << out;
  EXPECT_NE(out.find("module/"), std::string::npos) << out;
  expect_same_parameters(load_parameters(tmp.str("w.safetensors")), params);

  fs::remove(tmp.str("model.ckpt-2500.data-00000-of-00001"));
  EXPECT_NE(test::run_cli(
                "import --tf-checkpoint " + tmp.str("model.ckpt-2500") + " --out " + tmp.str("w2.safetensors"), &out),
            0);
  EXPECT_NE(out.find(tmp.str("model.ckpt-2500.data-00000-of-00001")), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp.str("w2.safetensors")));
}

TEST(TfCli, ImportRefusesToWriteOverItsInput) {
  TempDir tmp;
  write_nvidia_checkpoint(test_parameters(), tmp.str("model.ckpt-2500"), "module/");
  for (const std::string part : {".index", ".data-00000-of-00001"}) {
    const std::string input = tmp.str("model.ckpt-2500" + part);
    const std::string before = read_file(input);
    std::string out;
    EXPECT_EQ(test::run_cli("import --tf-checkpoint " + tmp.str("model.ckpt-2500") + " --out " + input, &out), 1)
        << out;
    EXPECT_NE(out.find("is also an input"), std::string::npos) << out;
    EXPECT_EQ(read_file(input), before) << input;
  }
}

TEST(TfCli, ImportedCheckpointPredictsExactlyAsTheSafetensors) {
  const Parameters params = test_parameters();
  TempDir tmp;
  save_parameters(tmp.str("direct.safetensors"), params);
  write_nvidia_checkpoint(params, tmp.str("model.ckpt-2500"), "module/", {1, true, 4096, 16});
  std::string out;
  ASSERT_EQ(
      test::run_cli(
          "import --tf-checkpoint " + tmp.str("model.ckpt-2500") + " --out " + tmp.str("imported.safetensors"), &out),
      0)
      << out;

  std::vector<uint8_t> pixels(static_cast<size_t>(kModelImageSize) * kModelImageSize);
  const std::vector<float> noise = test::random_values(pixels.size(), 5, 0.f, 255.f);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(noise[i]);
  write_png_gray8(tmp.str("image.png"), kModelImageSize, kModelImageSize, pixels);

  std::vector<Tensor> probs;
  for (const char* weights : {"direct", "imported"}) {
    ASSERT_EQ(test::run_cli("predict --model " + tmp.str(std::string(weights) + ".safetensors") + " --out " +
                                tmp.str(weights) + " " + tmp.str("image.png"),
                            &out),
              0)
        << out;
    probs.push_back(read_npy(tmp.str(std::string(weights) + "/image_prob.npy")));
  }
  EXPECT_EQ(probs[0].shape, probs[1].shape);
  ASSERT_EQ(probs[0].numel(), int64_t{kModelImageSize} * kModelImageSize);
  EXPECT_EQ(probs[0].data, probs[1].data);
}

}  // namespace
}  // namespace unetind
