// `ddpm schedule`: a schedule's per-timestep coefficients as CSV, and a line plot of
// alpha_bar, sqrt(alpha_bar), sqrt(1 - alpha_bar) and 50 beta against t.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "diffusion/image_io.hpp"
#include "diffusion/schedule.hpp"
#include "tools/cli_common.hpp"
#include "tools/commands.hpp"

namespace ddpm::cli {
namespace {

struct ScheduleOptions {
  std::string schedule = "linear";
  int64_t T = 1000;
  std::string csv = "schedule.csv";
  std::string png = "schedule.png";
};

void write_csv(const Schedule& s, const std::string& path) {
  std::ofstream out(path);
  DDPM_CHECK(out, "schedule", "cannot write ", path);
  out << "t,beta,alpha,alpha_bar,sqrt_abar,sqrt_1m_abar\n";
  out.precision(9);
  for (size_t t = 0; t < size_t(s.T); ++t)
    out << t << ',' << s.beta[t] << ',' << s.alpha[t] << ',' << s.alpha_bar[t] << ',' << s.sqrt_abar[t] << ','
        << s.sqrt_1m_abar[t] << '\n';
  out.close();
  DDPM_CHECK(!out.fail(), "schedule", "cannot write ", path);
}

// A line plot on [0, T-1] x [0, 1]: axes, grid lines every 0.25 in y and T/4 in x, a legend.
Image plot(const Schedule& s) {
  const int64_t w = 680, h = 420, left = 70, right = 30, top = 40, bottom = 50, scale = 2;
  const int64_t pw = w - left - right, ph = h - top - bottom;
  Image img(w, h, 3, 255);
  auto px = [&](double t) { return double(left) + t / double(s.T - 1) * double(pw); };
  auto py = [&](double v) { return double(top) + (1.0 - std::clamp(v, 0.0, 1.0)) * double(ph); };
  const Rgb grid{225, 225, 225}, axis{0, 0, 0};
  char label[48];
  for (int k = 0; k <= 4; ++k) {
    const double t = k * double(s.T - 1) / 4, v = k / 4.0;
    draw_line(img, px(0), py(v), px(double(s.T - 1)), py(v), grid);
    draw_line(img, px(t), py(0), px(t), py(1), grid);
    std::snprintf(label, sizeof label, "%.2f", v);
    draw_text(img, left - 10 - text_width(label, scale), int64_t(py(v)) - 6, label, axis, scale);
    std::snprintf(label, sizeof label, "%ld", long(std::lround(t)));
    draw_text(img, int64_t(px(t)) - text_width(label, scale) / 2, top + ph + 10, label, axis, scale);
  }
  draw_line(img, px(0), py(0), px(double(s.T - 1)), py(0), axis, 2);
  draw_line(img, px(0), py(0), px(0), py(1), axis, 2);
  std::snprintf(label, sizeof label, "%s schedule, T = %ld", schedule_name(s.kind), long(s.T));
  draw_text(img, left, 10, label, axis, scale);
  draw_text(img, left + pw / 2 - 4, top + ph + 30, "t", axis, scale);

  struct Curve {
    const char* name;
    Rgb color;
    std::function<double(size_t)> value;
  };
  const std::vector<Curve> curves{
      {"alpha_bar", {31, 119, 180}, [&](size_t t) { return s.alpha_bar[t]; }},
      {"sqrt(alpha_bar)", {44, 160, 44}, [&](size_t t) { return s.sqrt_abar[t]; }},
      {"sqrt(1-alpha_bar)", {255, 127, 14}, [&](size_t t) { return s.sqrt_1m_abar[t]; }},
      {"50 beta", {214, 39, 40}, [&](size_t t) { return 50.0 * s.beta[t]; }},
  };
  for (const Curve& c : curves)
    for (size_t t = 1; t < size_t(s.T); ++t)
      draw_line(img, px(double(t - 1)), py(c.value(t - 1)), px(double(t)), py(c.value(t)), c.color, 2);
  const int64_t legend_x = left + pw - 220, legend_y = top + 8;
  fill_rect(img, legend_x, legend_y, 216, 20 * int64_t(curves.size()) + 8, {255, 255, 255});
  for (size_t i = 0; i < curves.size(); ++i) {
    const int64_t y = legend_y + 6 + 20 * int64_t(i);
    fill_rect(img, legend_x + 6, y + 5, 20, 4, curves[i].color);
    draw_text(img, legend_x + 32, y, curves[i].name, axis, scale);
  }
  return img;
}

void run(const ScheduleOptions& o) {
  check_distinct(o.csv, o.png);
  check_output_file(o.csv);
  check_output_file(o.png);
  Schedule s = make_schedule(parse_schedule(o.schedule), o.T);
  write_csv(s, o.csv);
  write_png(o.png, plot(s));
  std::fprintf(stderr, "%s schedule, T = %ld: alpha_bar[T-1] = %.3g, beta in [%.3g, %.3g]\nwrote %s and %s\n",
               o.schedule.c_str(), long(o.T), s.alpha_bar.back(), s.beta.front(), s.beta.back(), o.csv.c_str(),
               o.png.c_str());
}

}  // namespace

void add_schedule(CLI::App& app) {
  auto o = std::make_shared<ScheduleOptions>();
  CLI::App* cmd = app.add_subcommand("schedule", "Write a noise schedule's coefficients (CSV) and plot (PNG)");
  cmd->add_option("--schedule", o->schedule, "linear or cosine")
      ->check(CLI::IsMember({"linear", "cosine"}))
      ->capture_default_str();
  cmd->add_option("--T", o->T, "diffusion timesteps")->check(in_range(2, double(kMaxT)))->capture_default_str();
  cmd->add_option("--csv", o->csv, "CSV file")->capture_default_str();
  cmd->add_option("--png", o->png, "PNG file")->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace ddpm::cli
