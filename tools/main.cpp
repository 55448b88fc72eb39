// The `ddpm` command: a CLI11 app with one subcommand per tools/cmd_<name>.cpp.
// Exit codes: 0 success, 1 a ddpm::Error (bad data, bad checkpoint, ...), 2 bad flags,
// 130 training stopped by Ctrl-C (after saving).
#include <cstdio>
#include <exception>

#include "kernels/error.hpp"
#include "tools/commands.hpp"

int main(int argc, char** argv) {
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
  } catch (const std::exception& e) {  // ddpm::Error and anything else (out of memory, ...)
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
