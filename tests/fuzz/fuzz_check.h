// FUZZ_CHECK: a property a fuzz target asserts about the code under test. A failure prints the
// condition and aborts, which libFuzzer (and the replay driver's CTest entry) reports as a finding
// with the input that caused it. For test code only; no thread ownership.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
