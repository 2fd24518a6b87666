// Test-only helpers: where the reference models live, and a macro that skips when they are absent.
#pragma once

#include <sys/stat.h>

#include <string>

#include "testing/test_env.h"

namespace dualblade::testing {

// The reference models (../shared/models relative to the repository root).
inline std::string ReferenceModelsDir() { return SourceDir() + "/../shared/models"; }

inline bool FileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace dualblade::testing

// Declares `std::string var` = path of reference model `name`, or skips the test with the reason.
#define DB_REFERENCE_MODEL_OR_SKIP(var, name)                                              \
  const std::string var = ::dualblade::testing::ReferenceModelsDir() + "/" + (name);       \
  if (!::dualblade::testing::FileExists(var))                                              \
  GTEST_SKIP() << "reference model " << var << " is absent (../shared/models not provided)"
