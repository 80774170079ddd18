#include "dynlib.h"

#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <unordered_set>

#include "cublaslt_api.h"
#include "nccl_api.h"

namespace wndc::dynlib {
namespace {

const char* const kStandardFolders[] = {
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/x86_64-linux/lib",
    "/usr/lib/x86_64-linux-gnu",
};

std::string environment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  return value == nullptr ? std::string() : std::string(value);
}

std::vector<std::string> splitFolders(const std::string& list) {
  std::vector<std::string> folders;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(':', start);
    if (end == std::string::npos) end = list.size();
    std::string folder = list.substr(start, end - start);
    while (folder.size() > 1 && folder.back() == '/') folder.pop_back();
    if (!folder.empty()) folders.push_back(folder);
    start = end + 1;
  }
  return folders;
}

/** dlerror() without the "<file>: " prefix it usually repeats. */
std::string lastError(const std::string& file) {
  const char* raw = dlerror();
  std::string message = raw == nullptr ? "unknown dlopen error" : raw;
  const std::string prefix = file + ": ";
  if (message.compare(0, prefix.size(), prefix) == 0) message.erase(0, prefix.size());
  return message;
}

std::string resolvedPath(void* handle, const std::string& fallback) {
  link_map* map = nullptr;
  if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr && map->l_name != nullptr &&
      map->l_name[0] != '\0') {
    return map->l_name;
  }
  return fallback;
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) text += i + 1 == names.size() ? " or " : ", ";
    text += names[i];
  }
  return text;
}

}  // namespace

std::vector<std::string> searchOrder(const LibrarySpec& spec) {
  const std::string explicitFile = environment(spec.fileVariable);
  if (!explicitFile.empty()) return {explicitFile};

  std::vector<std::string> files;
  std::unordered_set<std::string> seen;
  auto add = [&](const std::string& file) {
    if (seen.insert(file).second) files.push_back(file);
  };
  auto addFolders = [&](const std::vector<std::string>& folders) {
    for (const std::string& folder : folders) {
      for (const std::string& soname : spec.sonames) add(folder + "/" + soname);
    }
  };
  addFolders(splitFolders(environment("CUDA_LIB_DIRS")));
  addFolders(splitFolders(environment("LD_LIBRARY_PATH")));
  for (const std::string& soname : spec.sonames) add(soname);
  addFolders(std::vector<std::string>(std::begin(kStandardFolders), std::end(kStandardFolders)));
  return files;
}

std::string loadFirst(const LibrarySpec& spec, const Accept& accept) {
  const bool explicitFile = !environment(spec.fileVariable).empty();
  std::string attempts;
  for (const std::string& file : searchOrder(spec)) {
    const bool systemSearch = file.find('/') == std::string::npos;
    const std::string label =
        explicitFile ? spec.fileVariable + "=" + file : systemSearch ? file + " (system loader)" : file;
    dlerror();
    void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      attempts += "  " + label + ": " + lastError(file) + "\n";
      continue;
    }
    const std::string path = resolvedPath(handle, file);
    const std::string rejection = accept(handle);
    if (rejection.empty()) return path;
    dlclose(handle);
    attempts += "  " + label + (systemSearch ? " -> " + path : "") + ": " + rejection + "\n";
  }

  std::string message = "cannot load " + spec.title + " (" + joinNames(spec.sonames) + "); tried:\n" + attempts;
  if (explicitFile) {
    message += "fix: point " + spec.fileVariable + " at a usable " + spec.title + " library, or unset it to search " +
               "CUDA_LIB_DIRS, LD_LIBRARY_PATH and the standard folders";
  } else {
    message += "fix: set CUDA_LIB_DIRS to the folder that holds " + spec.sonames.front() + " (folders separated by `:`; " +
               spec.whereToLook + "), or " + spec.fileVariable + " to the library file itself";
  }
  throw std::runtime_error(message);
}

std::string resolveAll(void* handle, const std::vector<const char*>& names, std::vector<void*>& addresses) {
  addresses.assign(names.size(), nullptr);
  std::string missing;
  for (size_t i = 0; i < names.size(); ++i) {
    dlerror();
    addresses[i] = dlsym(handle, names[i]);
    if (addresses[i] == nullptr) missing += std::string(missing.empty() ? "" : ", ") + names[i];
  }
  return missing.empty() ? "" : "loaded, but it lacks " + missing;
}

}  // namespace wndc::dynlib

// Each library's loader: resolve the function list into a candidate struct, accept the library
// only when every function exists (and, for cuBLASLt, the version is new enough), then publish it.

namespace wndc::lt {
namespace {

dynlib::LoadedApi<CublasLt> library;

std::string versionText(size_t version) {
  return std::to_string(version / 10000) + "." + std::to_string(version / 100 % 100) + "." +
         std::to_string(version % 100);
}

}  // namespace

std::string loadCublasLt() {
  const dynlib::LibrarySpec spec{
      "cuBLASLt",
      "WNDC_CUBLASLT",
      {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"},
      "the CUDA toolkit keeps it in /usr/local/cuda/lib64, PyTorch's pip install in site-packages/nvidia/cublas/lib",
  };
  const std::vector<const char*> names = {
#define WNDC_NAME(name) #name,
      WNDC_CUBLASLT_FUNCTIONS(WNDC_NAME)
#undef WNDC_NAME
  };
  return library.load(spec, names, [](CublasLt& api, const std::vector<void*>& addresses) -> std::string {
    size_t i = 0;
#define WNDC_ASSIGN(name) api.name = reinterpret_cast<name##_t>(addresses[i++]);
    WNDC_CUBLASLT_FUNCTIONS(WNDC_ASSIGN)
#undef WNDC_ASSIGN
    const size_t version = api.cublasLtGetVersion();
    if (version < kMinimumVersion) {
      return "cuBLASLt " + versionText(version) + " is too old (wndc needs " + versionText(kMinimumVersion) +
             " or newer)";
    }
    return "";
  });
}

const CublasLt& cublasLt() { return library.get("cuBLASLt is not loaded (call loadLibraries first)"); }

}  // namespace wndc::lt

namespace wndc::nccl {
namespace {

dynlib::LoadedApi<Nccl> library;

}  // namespace

std::string loadNccl() {
  const dynlib::LibrarySpec spec{
      "NCCL",
      "WNDC_NCCL",
      {"libnccl.so.2", "libnccl.so"},
      "PyTorch's pip install keeps it in site-packages/nvidia/nccl/lib",
  };
#define WNDC_NAME(name) #name,
  const std::vector<const char*> names = {WNDC_NCCL_FUNCTIONS(WNDC_NAME)};
  const std::vector<const char*> optional = {WNDC_NCCL_OPTIONAL_FUNCTIONS(WNDC_NAME)};
#undef WNDC_NAME
  return library.load(
      spec, names,
      [](Nccl& api, const std::vector<void*>& addresses) -> std::string {
        size_t i = 0;
#define WNDC_ASSIGN(name) api.name = reinterpret_cast<name##_t>(addresses[i++]);
        WNDC_NCCL_FUNCTIONS(WNDC_ASSIGN)
        WNDC_NCCL_OPTIONAL_FUNCTIONS(WNDC_ASSIGN)
#undef WNDC_ASSIGN
        return "";
      },
      optional);
}

const Nccl& nccl() { return library.get("NCCL is not loaded (call loadLibraries with nccl: true first)"); }

}  // namespace wndc::nccl
