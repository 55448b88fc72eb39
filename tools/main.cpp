// The `ddpm` command: a CLI11 app with one subcommand per tools/cmd_<name>.cpp.
// Exit codes: 0 success, 1 a ddpm::Error (bad data, bad checkpoint, ...), 2 bad flags,
// 130 training stopped by Ctrl-C, SIGTERM or SIGHUP (after saving).
#include <cstdio>
#include <exception>
#include <new>

#include "kernels/error.hpp"
#include "tools/commands.hpp"

int main(int argc, char** argv) {
#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
  // Built with -march=x86-64-v3 (CMake's DDPM_CPU_ARCH): say so rather than die on an illegal instruction.
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    std::fprintf(stderr, "error: this build of ddpm needs a CPU with AVX2 and FMA; rebuild with "
                         "cmake -DDDPM_CPU_ARCH=x86-64\n");
    return 1;
  }
#endif
  CLI::App app{"ddpm: denoising diffusion probabilistic models on a from-scratch C++/CUDA engine"};
  app.require_subcommand(1, 1);
  ddpm::cli::add_train(app);
  ddpm::cli::add_sample(app);
  ddpm::cli::add_forward(app);
  ddpm::cli::add_trace(app);
  ddpm::cli::add_schedule(app);
  ddpm::cli::add_info(app);
  ddpm::cli::add_check_reference(app);
  ddpm::cli::add_classifier(app);
  ddpm::cli::add_eval(app);
  try {
    app.parse(argc, argv);  // runs the chosen subcommand's callback
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command's own exit code, message already printed
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help prints and returns 0
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of host memory (a smaller --batch, --image-size or model?)\n");
    return 1;
  } catch (const std::exception& e) {  // ddpm::Error and anything else
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
