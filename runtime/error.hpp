// Typed errors. Library code throws; it never calls exit() or abort().
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace cuvi {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error { using Error::Error; };
class DTypeError : public Error { using Error::Error; };
class DeviceError : public Error { using Error::Error; };
class IndexError : public Error { using Error::Error; };
class ValueError : public Error { using Error::Error; };
class AutogradError : public Error { using Error::Error; };
class CudaError : public Error { using Error::Error; };
class IOError : public Error { using Error::Error; };

namespace detail {
template <class E>
[[noreturn]] inline void raise(const std::string& msg, const char* file, int line) {
  std::ostringstream os;
  os << msg << " [" << file << ":" << line << "]";
  throw E(os.str());
}
}  // namespace detail

}  // namespace cuvi

// CUVI_CHECK(cond, ErrorType, stream-expression): throws ErrorType with the
// streamed message and the throwing site when cond is false.
#define CUVI_CHECK(cond, ErrT, msg)                                  \
  do {                                                               \
    if (!(cond)) {                                                   \
      std::ostringstream cuvi_os_;                                   \
      cuvi_os_ << msg;                                               \
      ::cuvi::detail::raise<ErrT>(cuvi_os_.str(), __FILE__, __LINE__); \
    }                                                                \
  } while (0)

#define CUVI_THROW(ErrT, msg) CUVI_CHECK(false, ErrT, msg)
