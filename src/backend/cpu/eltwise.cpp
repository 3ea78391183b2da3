#include "backend/cpu/ops.h"

namespace unetind::cpu {

void append_sigmoid(Net& net, std::vector<Step>& steps, const memory& data) {
  auto pd = dnnl::eltwise_forward::primitive_desc(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::eltwise_logistic,
                                  data.get_desc()),
      net.engine);
  steps.push_back({dnnl::eltwise_forward(pd), {{DNNL_ARG_SRC, data}, {DNNL_ARG_DST, data}}, {}});
}

void accumulate(Net& net, const memory& acc, const memory& contribution) {
  // In-place sum: the destination is the first source.
  auto pd = dnnl::sum::primitive_desc(acc.get_desc(), {1.0f, 1.0f}, {acc.get_desc(), contribution.get_desc()},
                                      net.engine, user_scratchpad());
  net.append(net.backward, pd,
             {{DNNL_ARG_MULTIPLE_SRC + 0, acc}, {DNNL_ARG_MULTIPLE_SRC + 1, contribution}, {DNNL_ARG_DST, acc}});
}

}  // namespace unetind::cpu
