#include "backend/cpu/net.h"

namespace unetind::cpu {

void Net::run(std::vector<Step>& steps) {
  for (Step& s : steps) s.primitive.execute(stream, s.args);
  stream.wait();
}

memory reorder_if_needed(Net& net, std::vector<Step>& steps, const memory& from, const memory::desc& desc) {
  if (from.get_desc() == desc) return from;
  memory to = net.make(desc);
  steps.push_back({dnnl::reorder(from, to), {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}});
  return to;
}

memory user_memory(Net& net, const memory::dims& dims, tag format) {
  return memory(memory::desc(dims, dt::f32, format), net.engine, nullptr);
}

}  // namespace unetind::cpu
