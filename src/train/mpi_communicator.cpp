// The MPI communicator of data_parallel.h (built where CMake finds MPI):
// MPI_COMM_WORLD, started here unless the process did, ended with the
// communicator.
//
// Waiting is polite: a rank that reaches a collective first (the others
// still computing, or rank 0 evaluating) waits in a non-blocking barrier that
// it tests with growing sleeps, instead of spinning a core that the slower
// ranks may share. The reduction itself then runs blocking, at full speed.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>

#include "unetind/backend.h"
#include "unetind/data_parallel.h"
#include "unetind/error.h"

namespace unetind {

namespace {

void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(std::string("data parallel: ") + call + " failed: " + std::string(text, length));
}

int checked_count(size_t count) {
  if (count > size_t(INT_MAX)) throw Error("data parallel: " + std::to_string(count) + " values in one collective");
  return static_cast<int>(count);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int started = 0;
    MPI_Initialized(&started);
    if (!started) {
      // Only the thread that trains calls MPI.
      int provided = 0;
      check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_mpi_ = true;
    }
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    // Errors come back as codes, and so as an Error naming the call.
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm local;
    check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
  }

  ~MpiCommunicator() override {
    MPI_Comm_free(&comm_);
    if (owns_mpi_) MPI_Finalize();
  }

  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

  void all_reduce_mean(float* data, size_t count) override {
    barrier();
    check(MPI_Allreduce(MPI_IN_PLACE, data, checked_count(count), MPI_FLOAT, MPI_SUM, comm_), "MPI_Allreduce");
    const float scale = 1.0f / static_cast<float>(size_);
    for (size_t i = 0; i < count; ++i) data[i] *= scale;
  }

  void broadcast(void* data, size_t bytes, int root) override {
    barrier();
    check(MPI_Bcast(data, checked_count(bytes), MPI_BYTE, root, comm_), "MPI_Bcast");
  }

  void barrier() override {
    MPI_Request request;
    check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
    auto pause = std::chrono::microseconds(20);
    for (;;) {
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) return;
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }

  void abort_group(int exit_code) override { MPI_Abort(comm_, exit_code); }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  bool owns_mpi_ = false;
};

#ifdef UNETIND_HAVE_NCCL
// MPI for everything on the host, NCCL for the gradients on the GPUs.
class MpiNcclCommunicator final : public Communicator {
 public:
  MpiNcclCommunicator(std::unique_ptr<Communicator> mpi, std::unique_ptr<Communicator> nccl)
      : mpi_(std::move(mpi)), nccl_(std::move(nccl)) {}
  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  void all_reduce_mean(float* data, size_t count) override { mpi_->all_reduce_mean(data, count); }
  bool reduces_device_memory() const override { return true; }
  void all_reduce_mean_device(float* data, size_t count) override { nccl_->all_reduce_mean_device(data, count); }
  void broadcast(void* data, size_t bytes, int root) override { mpi_->broadcast(data, bytes, root); }
  void barrier() override { mpi_->barrier(); }
  void abort_group(int exit_code) override { mpi_->abort_group(exit_code); }

 private:
  std::unique_ptr<Communicator> mpi_, nccl_;
};
#endif

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(text, &length);  // callable before MPI starts
  std::string version(text, length);
  return "MPI (" + version.substr(0, version.find(',')) + ")";
}

ProcessGroup join_process_group(const std::string& device) {
  if (!launched_by_mpi()) return {nullptr, 0, 1, device};
  auto mpi = std::make_unique<MpiCommunicator>();
  ProcessGroup group{nullptr, mpi->local_rank(), mpi->local_size(), device};
  // "cuda": one GPU per rank on each host.
  if (device == "cuda") group.device = "cuda:" + std::to_string(group.local_rank);
  check_device(group.device);
#ifdef UNETIND_HAVE_NCCL
  if (group.device.starts_with("cuda:")) {
    // Rank 0's id reaches every rank through MPI.
    std::string id = mpi->rank() == 0 ? make_nccl_unique_id() : std::string();
    size_t bytes = id.size();
    mpi->broadcast(&bytes, sizeof bytes, 0);
    id.resize(bytes);
    mpi->broadcast(id.data(), bytes, 0);
    auto nccl = make_nccl_communicator(id, mpi->rank(), mpi->size(), std::stoi(group.device.substr(5)));
    group.communicator = std::make_unique<MpiNcclCommunicator>(std::move(mpi), std::move(nccl));
    return group;
  }
#endif
  group.communicator = std::move(mpi);
  return group;
}

}  // namespace unetind
