// bench_concat: should TinyUNet's skip concatenation be written in place?
//
// Today each decoder concat is two reorders, the decoder half and the skip
// half, into channel views of the concat's output (backend/cpu/concat.cpp).
// "In place" would drop that copy by letting the skip's convolution write
// straight into its channel view. For every concat of the graph at the given
// size this times the three pieces of that trade, in oneDNN 2.6 directly:
//
//   copy/...         both halves reordered into the views (what we do)
//   conv_dense/...   the skip's convolution (3x3, ReLU) into its own buffer
//   conv_in_view/... the same convolution into the view (the in-place plan)
//
// In place pays off only if conv_in_view - conv_dense < copy. Each row's
// label is the implementation oneDNN chose: a view has strides that no
// optimised kernel of this oneDNN accepts, so it falls back to ref:any.
//
//   bench_concat [--size=512] [--batch=1] [--precision=f32|bf16] [Google Benchmark flags]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <dnnl.hpp>
#include <string>

#include "unetind/model.h"

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct Setup {
  int size = unetind::kModelImageSize, batch = 1;
  dt type = dt::f32;
};

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

memory zeroed(const memory::desc& md) {
  memory m(md, engine());
  std::memset(m.get_data_handle(), 0, md.get_size());
  return m;
}

// A concat of `a_channels` (decoder) and `b_channels` (skip) at h x w, the
// skip made by `skip_conv`.
void register_concat(const Setup& s, int a_channels, int b_channels, int h, const unetind::ConvSpec& skip_conv) {
  const memory::dims a_dims{s.batch, a_channels, h, h}, b_dims{s.batch, b_channels, h, h};
  const memory::desc a_md(a_dims, s.type, tag::nhwc), b_md(b_dims, s.type, tag::nhwc);
  const memory::desc out_md({s.batch, a_channels + b_channels, h, h}, s.type, tag::nhwc);
  const memory::desc b_view_md = out_md.submemory_desc(b_dims, {0, a_channels, 0, 0});
  const std::string name = std::to_string(a_channels) + "+" + std::to_string(b_channels) + "@" + std::to_string(h);

  benchmark::RegisterBenchmark(("copy/" + name).c_str(), [=](benchmark::State& state) {
    memory a = zeroed(a_md), b = zeroed(b_md), out = zeroed(out_md);
    memory a_view(out_md.submemory_desc(a_dims, {0, 0, 0, 0}), engine(), out.get_data_handle());
    memory b_view(b_view_md, engine(), out.get_data_handle());
    const dnnl::reorder to_a(a, a_view), to_b(b, b_view);
    dnnl::stream stream(engine());
    for (auto _ : state) {
      to_a.execute(stream, a, a_view);
      to_b.execute(stream, b, b_view);
      stream.wait();
    }
    state.SetLabel("2 x reorder");
  })->Unit(benchmark::kMillisecond);

  // The skip's convolution, into a dense buffer or into the concat's view.
  const int cin = skip_conv.in_channels;
  const memory::desc src_md({s.batch, cin, h, h}, s.type, tag::nhwc);
  const memory::desc weights_md({b_channels, cin, 3, 3}, s.type, tag::any);
  const memory::desc bias_md({b_channels}, dt::f32, tag::x);
  dnnl::post_ops relu;
  relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(relu);
  for (const bool in_view : {false, true}) {
    const memory::desc dst_md = in_view ? b_view_md : b_md;
    benchmark::RegisterBenchmark(((in_view ? "conv_in_view/" : "conv_dense/") + name).c_str(),
                                 [=](benchmark::State& state) {
                                   const dnnl::convolution_forward::primitive_desc pd(
                                       dnnl::convolution_forward::desc(
                                           dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                           src_md, weights_md, bias_md, dst_md, {1, 1}, {1, 1}, {1, 1}),
                                       attr, engine());
                                   const memory src = zeroed(src_md), weights = zeroed(pd.weights_desc()),
                                                bias = zeroed(bias_md), out = zeroed(out_md);
                                   const memory dst(dst_md, engine(), out.get_data_handle());
                                   const dnnl::convolution_forward conv(pd);
                                   const std::unordered_map<int, memory> args{
                                       {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_BIAS, bias},
                                       {DNNL_ARG_DST, dst}};
                                   dnnl::stream stream(engine());
                                   for (auto _ : state) {
                                     conv.execute(stream, args);
                                     stream.wait();
                                   }
                                   state.SetLabel(pd.impl_info_str());
                                 })
        ->Unit(benchmark::kMillisecond);
  }
}

// Takes --size, --batch and --precision out of argv (the rest is Google
// Benchmark's).
Setup parse_setup(int& argc, char** argv) {
  Setup s;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--size=", 0) == 0) {
      s.size = std::stoi(arg.substr(7));
    } else if (arg.rfind("--batch=", 0) == 0) {
      s.batch = std::stoi(arg.substr(8));
    } else if (arg == "--precision=bf16") {
      s.type = dt::bf16;
    } else if (arg != "--precision=f32") {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const Setup setup = parse_setup(argc, argv);
  const unetind::Graph graph = unetind::build_graph(unetind::ModelConfig{});
  for (const unetind::Node& node : graph.nodes) {
    if (node.kind != unetind::OpKind::Concat) continue;
    const unetind::Node& decoder = graph.nodes[node.inputs[0]];
    const unetind::Node& skip = graph.nodes[node.inputs[1]];
    if (skip.kind != unetind::OpKind::Conv2d) continue;  // the skip is always a convolution's output in TinyUNet
    register_concat(setup, decoder.channels, skip.channels, setup.size / node.scale, graph.convs[skip.conv]);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  std::printf("TinyUNet concats at %dx%d, batch %d, %s\n", setup.size, setup.size, setup.batch,
              setup.type == dt::f32 ? "f32" : "bf16");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
