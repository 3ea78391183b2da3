// Device choice on the CLI: every command that runs the model takes --device
// through one helper, refuses a device it cannot have with the list of those
// it can, and --version says what the build has and the machine shows now.
#include <gtest/gtest.h>

#include "test_util.h"
#include "unetind/backend.h"
#include "unetind/error.h"

namespace unetind {
namespace {

std::string device_list() {
  std::string names;
  for (const auto& b : available_backends()) names += (names.empty() ? "" : ", ") + b;
  return "available: " + names;
}

TEST(Devices, EveryCommandRefusesAnUnknownDeviceListingTheAvailableOnes) {
  test::TempDir dir;
  const std::string list = device_list();
  for (const std::string& command :
       {"train --data " + dir.str() + " --out " + dir.str("run"), "evaluate --data " + dir.str() + " --model m",
        "predict --model m --out " + dir.str("p") + " x.png", std::string("benchmark")}) {
    for (const char* device : {"tpu", "cuda:99", "cuda:x"}) {
      SCOPED_TRACE(command + " --device " + device);
      std::string log;
      EXPECT_NE(test::run_cli(command + " --device " + device, &log), 0);
      EXPECT_NE(log.find("--device"), std::string::npos) << log;
      EXPECT_NE(log.find(device), std::string::npos) << log;
      EXPECT_NE(log.find(list), std::string::npos) << log;
    }
  }
  try {
    check_device("tpu");
    ADD_FAILURE() << "tpu accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(list), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(check_device("cpu"));
}

TEST(Devices, VersionSaysWhatIsBuiltInAndWhatIsVisible) {
  std::string out;
  ASSERT_EQ(test::run_cli("--version", &out), 0) << out;
  EXPECT_NE(out.find("oneDNN 2."), std::string::npos) << out;
#ifdef UNETIND_HAVE_CUDA
  EXPECT_NE(out.find("cuda (CUDA runtime "), std::string::npos) << out;
  EXPECT_NE(out.find("cuDNN "), std::string::npos) << out;
#else
  EXPECT_EQ(out.find("cuda ("), std::string::npos) << out;
#endif
#ifdef UNETIND_HAVE_MPI
  EXPECT_NE(out.find("data parallel: MPI ("), std::string::npos) << out;
#else
  EXPECT_NE(out.find("data parallel: no MPI"), std::string::npos) << out;
#endif
  std::string visible;
  for (const auto& b : available_backends()) visible += (visible.empty() ? "" : ", ") + b;
  EXPECT_NE(out.find("devices visible now: " + visible), std::string::npos) << out;
}

}  // namespace
}  // namespace unetind
