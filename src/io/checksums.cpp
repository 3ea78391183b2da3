#include "io/checksums.h"

#include <atomic>

namespace unetind::checksums {

namespace {
std::atomic<bool> g_checked{true};
}  // namespace

void set_checked(bool checked) { g_checked.store(checked, std::memory_order_relaxed); }
bool checked() { return g_checked.load(std::memory_order_relaxed); }

}  // namespace unetind::checksums
