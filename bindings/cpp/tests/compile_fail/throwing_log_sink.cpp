// Must NOT compile: a log sink that may throw (not noexcept).
#include "noxy.hpp"

noxy::LogSink sink() {
  return [](noxy::LogLevel, std::string_view) {};
}
