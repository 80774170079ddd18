// Finding a shared library at run time: wndc loads cuBLASLt and NCCL with dlopen instead of linking
// them, so the addon builds where only nvcc and cudart exist and runs wherever the libraries are
// (the CUDA toolkit, PyTorch's pip wheels, ...). Plain C++ (no CUDA), compiled by nvcc's host compiler.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace wndc::dynlib {

/** What to look for, and the names the error message tells the user about. */
struct LibrarySpec {
  /** For messages, e.g. "cuBLASLt". */
  std::string title;
  /** Environment variable naming the library file itself, e.g. "WNDC_CUBLASLT". */
  std::string fileVariable;
  /** File names tried in this order in each folder, e.g. libcublasLt.so.13, .so.12, .so. */
  std::vector<std::string> sonames;
  /** Where the usual installs keep it, for the error's `fix:` line. */
  std::string whereToLook;
};

/**
 * The files tried, in order: the file named by `fileVariable` alone when that is set (a wrong
 * explicit setting should fail, not be bypassed by another copy); otherwise each soname in each
 * folder of CUDA_LIB_DIRS, then of LD_LIBRARY_PATH, then each bare soname (the system loader's own
 * search: rpath, ld.so.cache, default paths), then /usr/local/cuda/lib64,
 * /usr/local/cuda/targets/x86_64-linux/lib and /usr/lib/x86_64-linux-gnu. Duplicates are dropped.
 */
std::vector<std::string> searchOrder(const LibrarySpec& spec);

/** Inspects a library that dlopen accepted: returns "" to keep it, else why it is unusable. */
using Accept = std::function<std::string(void* handle)>;

/**
 * dlopens each file of searchOrder(spec) until one loads and passes `accept`; that one stays loaded
 * for the life of the process and its resolved path is returned. Rejected ones are closed.
 * Throws std::runtime_error listing every file tried with dlerror() or the rejection, and the fix.
 */
std::string loadFirst(const LibrarySpec& spec, const Accept& accept);

/**
 * Resolves every name of `names` in `handle` into `addresses` (same order); returns "" when all
 * exist, else "lacks <name>, <name>" for the missing ones.
 */
std::string resolveAll(void* handle, const std::vector<const char*>& names, std::vector<void*>& addresses);

/**
 * One library's entry points (`Api`, a struct of function pointers), loaded once per process:
 * the first library of the search that has every name of `names` and passes `fill` (which copies
 * the addresses into the struct and may reject the library, e.g. for its version) is kept.
 */
template <typename Api>
class LoadedApi {
 public:
  /** Copies `addresses` (in the order of `names`) into `api`; returns "" to keep the library, else why not. */
  using Fill = std::function<std::string(Api& api, const std::vector<void*>& addresses)>;

  /**
   * `optional` names follow `names` in the addresses `fill` gets: null where the library lacks
   * them (features of newer versions, which the caller checks before use).
   */
  std::string load(const LibrarySpec& spec, const std::vector<const char*>& names, const Fill& fill, const std::vector<const char*>& optional = {}) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!path_.empty()) return path_;
    Api candidate;
    path_ = loadFirst(spec, [&](void* handle) -> std::string {
      std::vector<void*> addresses;
      const std::string missing = resolveAll(handle, names, addresses);
      if (!missing.empty()) return missing;
      std::vector<void*> extra;
      resolveAll(handle, optional, extra);
      addresses.insert(addresses.end(), extra.begin(), extra.end());
      return fill(candidate, addresses);
    });
    api_ = candidate;
    ready_.store(true, std::memory_order_release);
    return path_;
  }

  /** The entry points; throws `notLoaded` until load() has succeeded (read without the lock: it runs per call). */
  const Api& get(const char* notLoaded) const {
    if (!ready_.load(std::memory_order_acquire)) throw std::runtime_error(notLoaded);
    return api_;
  }

 private:
  std::mutex mutex_;
  Api api_{};
  std::string path_;
  std::atomic<bool> ready_{false};
};

}  // namespace wndc::dynlib
