// A main() for the fuzz target where libFuzzer is not linked (g++, the release and asan builds):
// it replays the inputs in the files and directories it is given, then runs -runs=N inputs drawn
// from -seed=S — random bytes, and the given inputs with a few bytes changed. No coverage
// guidance: that is libFuzzer's job (tools/fuzz.sh); this keeps the property checked on every test
// run. The flags are libFuzzer's spelling, so one command line serves both binaries.
//
// On a failed check the harness aborts; the input being run is printed in hex first (and written
// to ./crash-input), so it can be added to tests/fuzz/regressions.

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> g_input;  // the input being run, for the crash report

void WriteHex(int fd) {
  static const char kDigits[] = "0123456789abcdef";
  char pair[2];
  for (uint8_t b : g_input) {
    pair[0] = kDigits[b >> 4];
    pair[1] = kDigits[b & 15];
    if (write(fd, pair, 2) != 2) return;
  }
  if (write(fd, "\n", 1) != 1) return;
}

// Only async-signal-safe calls: write, open, close, _exit.
void ReportCrash(int) {
  const char kHeader[] = "convkit_fuzz_standalone: failing input (hex, also in ./crash-input): ";
  if (write(STDERR_FILENO, kHeader, sizeof(kHeader) - 1) < 0) _exit(1);
  WriteHex(STDERR_FILENO);
  FILE* f = std::fopen("crash-input", "wb");  // not async-signal-safe, but the process is dying
  if (f != nullptr) {
    std::fwrite(g_input.data(), 1, g_input.size(), f);
    std::fclose(f);
  }
  _exit(1);
}

void ReportSanitizerDeath() { ReportCrash(0); }

void Run(const std::vector<uint8_t>& input) {
  g_input = input;
  LLVMFuzzerTestOneInput(g_input.data(), g_input.size());
}

std::vector<uint8_t> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The inputs under each argument (a file, or a directory's regular files in name order).
std::vector<std::vector<uint8_t>> ReadInputs(const std::vector<std::string>& paths) {
  std::vector<std::vector<uint8_t>> inputs;
  for (const std::string& arg : paths) {
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg))
        if (entry.is_regular_file()) files.push_back(entry.path());
      std::sort(files.begin(), files.end());
    } else if (std::filesystem::is_regular_file(arg)) {
      files.push_back(arg);
    } else {
      std::fprintf(stderr, "convkit_fuzz_standalone: no such file or directory: %s\n", arg.c_str());
      std::exit(2);
    }
    for (const auto& file : files) inputs.push_back(ReadFile(file));
  }
  return inputs;
}

// Half the time fresh random bytes (up to 128: the harness reads fewer than that), half the time
// a known input with one to four bytes replaced, so the regressions' neighbourhoods are visited.
std::vector<uint8_t> Draw(std::mt19937_64& rng, const std::vector<std::vector<uint8_t>>& known) {
  std::vector<uint8_t> input;
  if (known.empty() || rng() % 2 == 0) {
    input.resize(rng() % 129);
    for (uint8_t& b : input) b = static_cast<uint8_t>(rng());
    return input;
  }
  input = known[rng() % known.size()];
  if (input.empty()) return input;
  const int changes = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < changes; ++i) input[rng() % input.size()] = static_cast<uint8_t>(rng());
  return input;
}

bool TakeFlag(const char* arg, const char* name, long long* value) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0) return false;
  char* end = nullptr;
  *value = std::strtoll(arg + n, &end, 10);
  if (end == arg + n || *end != '\0' || *value < 0) {
    std::fprintf(stderr, "convkit_fuzz_standalone: %s expects a count >= 0, got '%s'\n", name,
                 arg + n);
    std::exit(2);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  long long runs = 0;
  long long seed = 1;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    if (TakeFlag(argv[i], "-runs=", &runs) || TakeFlag(argv[i], "-seed=", &seed)) continue;
    if (argv[i][0] == '-') continue;  // other libFuzzer flags mean nothing here
    paths.push_back(argv[i]);
  }
  std::signal(SIGABRT, ReportCrash);
  std::signal(SIGSEGV, ReportCrash);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_set_death_callback(ReportSanitizerDeath);  // ASan and UBSan end in _exit, not abort
#endif

  const std::vector<std::vector<uint8_t>> known = ReadInputs(paths);
  for (const auto& input : known) Run(input);
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  for (long long i = 0; i < runs; ++i) Run(Draw(rng, known));
  std::printf("convkit_fuzz_standalone: %zu given inputs and %lld drawn ones passed\n",
              known.size(), runs);
  return 0;
}
