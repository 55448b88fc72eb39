// engine/graph.hpp on the CPU: nothing to record, so a graph runs its work at each replay (and
// only then), on the inputs of that moment. The GPU's recording is tested in test_gpu_graph.cpp.
#include "engine/graph.hpp"
#include "engine/ops.hpp"
#include "helpers.hpp"

using namespace ddpm;
using namespace ddpm::test;

TEST_CASE("a CPU graph runs its work at each replay, on the inputs of that moment", "[graph]") {
  Generator gen = fresh_generator();
  Tensor a = randn({4, 3}, gen), out;
  int runs = 0;
  Graph g(Device::CPU, [&] {
    ++runs;
    out = add(a, a);
  });
  CHECK(runs == 0);
  for (int i = 1; i <= 3; ++i) {
    Tensor h = randn({4, 3}, gen);
    a.copy_from(h);
    g.replay();
    CHECK(runs == i);
    std::vector<float> want = h.to_floats();
    for (float& v : want) v *= 2.0f;
    CHECK(out.to_floats() == want);
  }
}
