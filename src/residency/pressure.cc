#include "residency/pressure.h"

#include "residency/proc_file.h"

namespace dualblade {

namespace {

Status ParseLine(std::string_view rest, std::string_view line, const std::string& path,
                 PressureLine* out) {
  bool avg10 = false, avg60 = false, avg300 = false, total = false;
  std::string_view field;
  while (NextField(&rest, &field)) {
    size_t eq = field.find('=');
    if (eq == std::string_view::npos) {
      return Status::Corruption(path + ": line '" + std::string(line) +
                                "' has a field without '='");
    }
    std::string_view key = field.substr(0, eq), value = field.substr(eq + 1);
    bool ok = true;
    if (key == "total") {
      auto n = ParseU64(value);
      ok = n.has_value();
      if (ok) out->total_us = *n;
      total = true;
    } else if (key == "avg10" || key == "avg60" || key == "avg300") {
      auto v = ParseDecimal(value);
      ok = v.has_value() && *v <= 100.0;
      if (ok) {
        (key == "avg10" ? out->avg10 : key == "avg60" ? out->avg60 : out->avg300) = *v;
        (key == "avg10" ? avg10 : key == "avg60" ? avg60 : avg300) = true;
      }
    }
    if (!ok) {
      return Status::Corruption(path + ": line '" + std::string(line) + "' has a bad value for " +
                                std::string(key));
    }
  }
  if (!avg10 || !avg60 || !avg300 || !total) {
    return Status::Corruption(path + ": line '" + std::string(line) +
                              "' lacks avg10, avg60, avg300 or total");
  }
  return Status::OK();
}

}  // namespace

Result<MemoryPressure> ParseMemoryPressure(std::string_view text, const std::string& path) {
  MemoryPressure p;
  bool has_some = false;
  std::string_view line;
  while (NextLine(&text, &line)) {
    std::string_view rest = line, kind;
    if (!NextField(&rest, &kind)) continue;
    if (kind == "some") {
      DB_RETURN_IF_ERROR(ParseLine(rest, line, path, &p.some));
      has_some = true;
    } else if (kind == "full") {
      DB_RETURN_IF_ERROR(ParseLine(rest, line, path, &p.full));
      p.has_full = true;
    } else {
      return Status::Corruption(path + ": line '" + std::string(line) +
                                "' starts with neither 'some' nor 'full'");
    }
  }
  if (!has_some) return Status::Corruption(path + ": no 'some' line");
  return p;
}

Result<MemoryPressure> ReadMemoryPressure(const std::string& path) {
  DB_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  return ParseMemoryPressure(text, path);
}

}  // namespace dualblade
