// Cross-backend op test (as ggml's test-backend-ops): each op, forward and
// backward, on every backend that is built, against the plain-loop reference
// over a sweep of shapes, small and odd ones included.
#include <gtest/gtest.h>

#include <cmath>

#include "op_cases.h"
#include "reference_ops.h"
#include "test_util.h"
#include "unetind/backend.h"
#include "unetind/error.h"

namespace unetind {
namespace {

TEST(Ops, EveryBackendMatchesReferenceForwardAndBackward) {
  for (const std::string& device : available_backends()) {
    auto backend = make_backend(device);
    for (const test::OpCase& c : test::op_cases()) {
      SCOPED_TRACE(device + " " + c.name + " batch " + std::to_string(c.batch) + " " + std::to_string(c.height) + "x" +
                   std::to_string(c.width));
      const auto params = test::random_params(c.graph, 7);
      const auto input = test::random_values(c.input_elements(), 11);

      auto exec = backend->compile(c.graph, {c.batch, c.height, c.width, true, Precision::F32});
      exec->set_parameters(params);
      std::vector<float> got(c.output_elements());
      exec->forward(input.data(), got.data(), false);

      const std::vector<ref::Act> acts = ref::forward_nodes(c.graph, params, input.data(), c.batch, c.height, c.width);
      const auto& want = acts[c.graph.output].v;
      ASSERT_EQ(got.size(), want.size());
      EXPECT_LE(test::max_abs_diff(got, want), 1e-5 * test::scale_of(want));

      // Backward with a random output gradient.
      const auto dy = test::random_values(got.size(), 13);
      std::vector<Tensor> grads;
      exec->backward(dy.data(), grads);
      const std::vector<Tensor> want_grads = ref::backward_nodes(c.graph, params, acts, dy);
      ASSERT_EQ(grads.size(), want_grads.size());
      for (size_t p = 0; p < grads.size(); ++p) {
        SCOPED_TRACE(params[p].name);
        ASSERT_EQ(grads[p].shape, want_grads[p].shape);
        EXPECT_LE(test::max_abs_diff(grads[p].data, want_grads[p].data), 1e-5 * test::scale_of(want_grads[p].data));
      }
    }
  }
}

TEST(Ops, RejectsSizesTheGraphCannotPool) {
  auto backend = make_backend("cpu");
  EXPECT_THROW(backend->compile(test::conv_then(OpKind::MaxPool2x2, 3), {1, 7, 8, false, Precision::F32}), Error);
}

}  // namespace
}  // namespace unetind
