// wndc's MPI addon: the few MPI collectives the CPU data-parallel trainer needs (sum all-reduce,
// broadcast, variable-size all-gather, barrier), for runtime/distributed/mpi.ts.
//
// Open MPI is loaded at run time with dlopen rather than linked, so the addon compiles without
// mpi.h and loads on a machine without MPI (it then says what is missing). The handful of Open MPI
// ABI facts it relies on (Open MPI >= 1.3, libmpi.so.40 for 3.x-5.x):
//   - MPI_Comm, MPI_Datatype, MPI_Op and MPI_Errhandler are pointers; the predefined handles are the
//     addresses of the exported globals `ompi_mpi_comm_world`, `ompi_mpi_float`, `ompi_mpi_double`,
//     `ompi_mpi_byte`, `ompi_mpi_int`, `ompi_mpi_op_sum` and `ompi_mpi_errors_return`
//     (mpi.h: `#define MPI_FLOAT OMPI_PREDEFINED_GLOBAL(MPI_Datatype, ompi_mpi_float)`);
//   - MPI_IN_PLACE is (void *)1, MPI_STATUS_IGNORE is a null pointer, MPI_SUCCESS is 0,
//     MPI_THREAD_SERIALIZED is 2.
// The library is opened RTLD_GLOBAL: Open MPI's own components (mca_*.so plugins) resolve their
// symbols against libmpi and fail to load otherwise.
//
// Every collective runs on a libuv worker thread (napi async work) and returns a promise, so the
// JavaScript thread stays free while ranks wait for each other: its timers keep the heartbeats and
// the collective's timeout going (runtime/distributed/watchdog.ts). The TypeScript side issues one
// collective at a time, which is what MPI_THREAD_SERIALIZED asks.

#include <dlfcn.h>
#include <node_api.h>

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Handle = void *;
using InitThreadFn = int (*)(int *, char ***, int, int *);
using CommIntFn = int (*)(Handle, int *);
using AllreduceFn = int (*)(const void *, void *, int, Handle, Handle, Handle);
using BcastFn = int (*)(void *, int, Handle, int, Handle);
using AllgatherFn = int (*)(const void *, int, Handle, void *, int, Handle, Handle);
using AllgathervFn = int (*)(const void *, int, Handle, void *, const int *, const int *, Handle, Handle);
using BarrierFn = int (*)(Handle);
using AbortFn = int (*)(Handle, int);
using FinalizeFn = int (*)();
using ErrorStringFn = int (*)(int, char *, int *);
using SetErrhandlerFn = int (*)(Handle, Handle);
using GetProcessorNameFn = int (*)(char *, int *);
using GetLibraryVersionFn = int (*)(char *, int *);

constexpr int kSuccess = 0;
constexpr int kThreadSerialized = 2;
void *const kInPlace = reinterpret_cast<void *>(1);
// Comfortably above Open MPI's MPI_MAX_ERROR_STRING (256) and MPI_MAX_LIBRARY_VERSION_STRING (256).
constexpr int kTextBuffer = 4096;

struct Mpi {
  void *library = nullptr;
  std::string path;
  InitThreadFn initThread = nullptr;
  CommIntFn commRank = nullptr;
  CommIntFn commSize = nullptr;
  AllreduceFn allreduce = nullptr;
  BcastFn bcast = nullptr;
  AllgatherFn allgather = nullptr;
  AllgathervFn allgatherv = nullptr;
  BarrierFn barrier = nullptr;
  AbortFn abort = nullptr;
  FinalizeFn finalize = nullptr;
  ErrorStringFn errorString = nullptr;
  SetErrhandlerFn setErrhandler = nullptr;
  GetProcessorNameFn processorName = nullptr;
  GetLibraryVersionFn libraryVersion = nullptr;
  Handle commWorld = nullptr;
  Handle typeFloat = nullptr;
  Handle typeDouble = nullptr;
  Handle typeByte = nullptr;
  Handle typeInt = nullptr;
  Handle opSum = nullptr;
  Handle errorsReturn = nullptr;
  bool initialized = false;
  bool finalized = false;
  int rank = -1;
  int size = 0;
};

Mpi mpi;

std::string mpiError(const char *operation, int code) {
  std::string text = std::string(operation) + " failed (MPI error " + std::to_string(code);
  if (mpi.errorString != nullptr) {
    char buffer[kTextBuffer];
    int length = 0;
    if (mpi.errorString(code, buffer, &length) == kSuccess && length > 0) text += ": " + std::string(buffer, static_cast<size_t>(length));
  }
  return text + ")";
}

napi_value throwError(napi_env env, const std::string &message) {
  napi_throw_error(env, "WNDC_MPI", message.c_str());
  return nullptr;
}

#define NAPI_OK(call)                                                  \
  do {                                                                 \
    if ((call) != napi_ok) return throwError(env, "internal: " #call); \
  } while (0)

template <typename T>
bool resolve(void *library, const char *name, T &out, std::string &missing) {
  void *symbol = dlsym(library, name);
  if (symbol == nullptr) {
    if (!missing.empty()) missing += ", ";
    missing += name;
    return false;
  }
  out = reinterpret_cast<T>(symbol);
  return true;
}

// load(path): opens the library and finds every symbol; returns { path, version }.
napi_value Load(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  char path[PATH_MAX];
  size_t length = 0;
  NAPI_OK(napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &length));
  if (mpi.library == nullptr) {
    void *library = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (library == nullptr) {
      const char *why = dlerror();
      return throwError(env, std::string("cannot load ") + path + ": " + (why != nullptr ? why : "unknown reason"));
    }
    std::string missing;
    resolve(library, "MPI_Init_thread", mpi.initThread, missing);
    resolve(library, "MPI_Comm_rank", mpi.commRank, missing);
    resolve(library, "MPI_Comm_size", mpi.commSize, missing);
    resolve(library, "MPI_Allreduce", mpi.allreduce, missing);
    resolve(library, "MPI_Bcast", mpi.bcast, missing);
    resolve(library, "MPI_Allgather", mpi.allgather, missing);
    resolve(library, "MPI_Allgatherv", mpi.allgatherv, missing);
    resolve(library, "MPI_Barrier", mpi.barrier, missing);
    resolve(library, "MPI_Abort", mpi.abort, missing);
    resolve(library, "MPI_Finalize", mpi.finalize, missing);
    resolve(library, "MPI_Error_string", mpi.errorString, missing);
    resolve(library, "MPI_Comm_set_errhandler", mpi.setErrhandler, missing);
    resolve(library, "MPI_Get_processor_name", mpi.processorName, missing);
    resolve(library, "MPI_Get_library_version", mpi.libraryVersion, missing);
    // The predefined handles are the globals' addresses (Open MPI's ABI).
    resolve(library, "ompi_mpi_comm_world", mpi.commWorld, missing);
    resolve(library, "ompi_mpi_float", mpi.typeFloat, missing);
    resolve(library, "ompi_mpi_double", mpi.typeDouble, missing);
    resolve(library, "ompi_mpi_byte", mpi.typeByte, missing);
    resolve(library, "ompi_mpi_int", mpi.typeInt, missing);
    resolve(library, "ompi_mpi_op_sum", mpi.opSum, missing);
    resolve(library, "ompi_mpi_errors_return", mpi.errorsReturn, missing);
    if (!missing.empty()) {
      dlclose(library);
      return throwError(env, std::string(path) + " is not Open MPI's libmpi (missing " + missing + "); wndc's MPI collective needs Open MPI");
    }
    mpi.library = library;
    mpi.path = path;
  }
  napi_value out;
  NAPI_OK(napi_create_object(env, &out));
  napi_value value;
  NAPI_OK(napi_create_string_utf8(env, mpi.path.c_str(), NAPI_AUTO_LENGTH, &value));
  NAPI_OK(napi_set_named_property(env, out, "path", value));
  char version[kTextBuffer];
  int versionLength = 0;
  if (mpi.libraryVersion(version, &versionLength) != kSuccess) versionLength = 0;
  std::string text(version, static_cast<size_t>(versionLength));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
  size_t comma = text.find(',');
  NAPI_OK(napi_create_string_utf8(env, text.substr(0, comma).c_str(), NAPI_AUTO_LENGTH, &value));
  NAPI_OK(napi_set_named_property(env, out, "version", value));
  return out;
}

bool requireReady(napi_env env) {
  if (mpi.library == nullptr) {
    throwError(env, "internal: the MPI library is not loaded (call load first)");
    return false;
  }
  if (!mpi.initialized || mpi.finalized) {
    throwError(env, mpi.finalized ? "MPI has been finalized" : "internal: MPI is not initialised (call init first)");
    return false;
  }
  return true;
}

// init(): MPI_Init_thread(SERIALIZED); errors return instead of aborting; returns { rank, size, host }.
napi_value Init(napi_env env, napi_callback_info) {
  if (mpi.library == nullptr) return throwError(env, "internal: the MPI library is not loaded (call load first)");
  if (!mpi.initialized) {
    int provided = 0;
    int code = mpi.initThread(nullptr, nullptr, kThreadSerialized, &provided);
    if (code != kSuccess) return throwError(env, mpiError("MPI_Init_thread", code));
    mpi.initialized = true;
    if (provided < kThreadSerialized) return throwError(env, "the MPI library does not allow calls from several threads (MPI_THREAD_SERIALIZED)");
    code = mpi.setErrhandler(mpi.commWorld, mpi.errorsReturn);
    if (code != kSuccess) return throwError(env, mpiError("MPI_Comm_set_errhandler", code));
    if ((code = mpi.commRank(mpi.commWorld, &mpi.rank)) != kSuccess) return throwError(env, mpiError("MPI_Comm_rank", code));
    if ((code = mpi.commSize(mpi.commWorld, &mpi.size)) != kSuccess) return throwError(env, mpiError("MPI_Comm_size", code));
  }
  napi_value out;
  napi_value value;
  NAPI_OK(napi_create_object(env, &out));
  NAPI_OK(napi_create_int32(env, mpi.rank, &value));
  NAPI_OK(napi_set_named_property(env, out, "rank", value));
  NAPI_OK(napi_create_int32(env, mpi.size, &value));
  NAPI_OK(napi_set_named_property(env, out, "size", value));
  char host[kTextBuffer];
  int hostLength = 0;
  if (mpi.processorName(host, &hostLength) != kSuccess) hostLength = 0;
  NAPI_OK(napi_create_string_utf8(env, host, static_cast<size_t>(hostLength), &value));
  NAPI_OK(napi_set_named_property(env, out, "host", value));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Asynchronous collectives.

enum class Kind { AllReduceSum, Broadcast, AllGather, Barrier };

struct Work {
  explicit Work(Kind k) : kind(k) {}
  Kind kind;
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref keep = nullptr;  // the caller's buffer, alive until the work completes
  void *data = nullptr;
  size_t count = 0;  // elements (all-reduce), bytes (broadcast, all-gather)
  Handle type = nullptr;
  int root = 0;
  int code = kSuccess;
  const char *operation = "";
  std::string failure;
  // All-gather results.
  std::vector<int> counts;
  char *gathered = nullptr;
  size_t gatheredBytes = 0;
};

// MPI counts are ints: large buffers go in pieces.
constexpr size_t kMaxPiece = static_cast<size_t>(1) << 30;

void Execute(napi_env, void *raw) {
  Work *w = static_cast<Work *>(raw);
  switch (w->kind) {
    case Kind::AllReduceSum: {
      w->operation = "MPI_Allreduce";
      size_t element = w->type == mpi.typeFloat ? 4 : 8;
      for (size_t done = 0; done < w->count && w->code == kSuccess;) {
        size_t piece = w->count - done < kMaxPiece ? w->count - done : kMaxPiece;
        w->code = mpi.allreduce(kInPlace, static_cast<char *>(w->data) + done * element, static_cast<int>(piece), w->type, mpi.opSum, mpi.commWorld);
        done += piece;
      }
      break;
    }
    case Kind::Broadcast: {
      w->operation = "MPI_Bcast";
      for (size_t done = 0; done < w->count && w->code == kSuccess;) {
        size_t piece = w->count - done < kMaxPiece ? w->count - done : kMaxPiece;
        w->code = mpi.bcast(static_cast<char *>(w->data) + done, static_cast<int>(piece), mpi.typeByte, w->root, mpi.commWorld);
        done += piece;
      }
      break;
    }
    case Kind::AllGather: {
      w->operation = "MPI_Allgather";
      int mine = static_cast<int>(w->count);
      w->counts.assign(static_cast<size_t>(mpi.size), 0);
      w->code = mpi.allgather(&mine, 1, mpi.typeInt, w->counts.data(), 1, mpi.typeInt, mpi.commWorld);
      if (w->code != kSuccess) break;
      std::vector<int> offsets(static_cast<size_t>(mpi.size), 0);
      size_t total = 0;
      for (int r = 0; r < mpi.size; r++) {
        if (total > static_cast<size_t>(INT_MAX)) break;
        offsets[static_cast<size_t>(r)] = static_cast<int>(total);
        total += static_cast<size_t>(w->counts[static_cast<size_t>(r)]);
      }
      if (total > static_cast<size_t>(INT_MAX)) {
        w->failure = "the all-gather's " + std::to_string(total) + " bytes exceed MPI's 2 GiB limit for one call";
        break;
      }
      w->gatheredBytes = total;
      w->gathered = static_cast<char *>(std::malloc(total > 0 ? total : 1));
      if (w->gathered == nullptr) {
        w->failure = "out of host memory for the all-gather (" + std::to_string(total) + " bytes)";
        break;
      }
      w->operation = "MPI_Allgatherv";
      w->code = mpi.allgatherv(w->data, mine, mpi.typeByte, w->gathered, w->counts.data(), offsets.data(), mpi.typeByte, mpi.commWorld);
      break;
    }
    case Kind::Barrier:
      w->operation = "MPI_Barrier";
      w->code = mpi.barrier(mpi.commWorld);
      break;
  }
}

void Complete(napi_env env, napi_status, void *raw) {
  Work *w = static_cast<Work *>(raw);
  napi_value result = nullptr;
  bool failed = w->code != kSuccess || !w->failure.empty();
  if (!failed && w->kind == Kind::AllGather) {
    void *bytes = nullptr;
    napi_value buffer;
    napi_value counts;
    void *countBytes = nullptr;
    napi_value countBuffer;
    napi_create_object(env, &result);
    napi_create_arraybuffer(env, w->gatheredBytes, &bytes, &buffer);
    if (w->gatheredBytes > 0) std::memcpy(bytes, w->gathered, w->gatheredBytes);
    napi_value data;
    napi_create_typedarray(env, napi_uint8_array, w->gatheredBytes, buffer, 0, &data);
    napi_create_arraybuffer(env, w->counts.size() * sizeof(int), &countBytes, &countBuffer);
    std::memcpy(countBytes, w->counts.data(), w->counts.size() * sizeof(int));
    napi_create_typedarray(env, napi_int32_array, w->counts.size(), countBuffer, 0, &counts);
    napi_set_named_property(env, result, "data", data);
    napi_set_named_property(env, result, "counts", counts);
  } else if (!failed) {
    napi_get_undefined(env, &result);
  }
  if (failed) {
    std::string message = w->failure.empty() ? mpiError(w->operation, w->code) : w->failure;
    napi_value text;
    napi_value code;
    napi_create_string_utf8(env, message.c_str(), NAPI_AUTO_LENGTH, &text);
    napi_create_string_utf8(env, "WNDC_MPI", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, text, &result);
    napi_reject_deferred(env, w->deferred, result);
  } else {
    napi_resolve_deferred(env, w->deferred, result);
  }
  if (w->keep != nullptr) napi_delete_reference(env, w->keep);
  std::free(w->gathered);
  napi_delete_async_work(env, w->work);
  delete w;
}

napi_value Queue(napi_env env, Work *w, napi_value buffer) {
  napi_value promise;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok) {
    delete w;
    return throwError(env, "internal: napi_create_promise");
  }
  if (buffer != nullptr) napi_create_reference(env, buffer, 1, &w->keep);
  napi_value name;
  napi_create_string_utf8(env, "wndc_mpi", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, Execute, Complete, w, &w->work);
  napi_queue_async_work(env, w->work);
  return promise;
}

// The typed array argument: its data pointer, element size and length.
bool typedArray(napi_env env, napi_value value, void **data, size_t *length, napi_typedarray_type *type) {
  bool is = false;
  if (napi_is_typedarray(env, value, &is) != napi_ok || !is) return false;
  napi_value buffer;
  size_t offset;
  return napi_get_typedarray_info(env, value, type, length, data, &buffer, &offset) == napi_ok;
}

// allReduceSum(Float32Array | Float64Array): sums in place across ranks.
napi_value AllReduceSum(napi_env env, napi_callback_info info) {
  if (!requireReady(env)) return nullptr;
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Work *w = new Work(Kind::AllReduceSum);
  napi_typedarray_type type;
  if (argc < 1 || !typedArray(env, argv[0], &w->data, &w->count, &type) || (type != napi_float32_array && type != napi_float64_array)) {
    delete w;
    return throwError(env, "internal: allReduceSum takes a Float32Array or a Float64Array");
  }
  w->type = type == napi_float32_array ? mpi.typeFloat : mpi.typeDouble;
  return Queue(env, w, argv[0]);
}

// broadcast(Uint8Array, root): root's bytes to every rank, in place.
napi_value Broadcast(napi_env env, napi_callback_info info) {
  if (!requireReady(env)) return nullptr;
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Work *w = new Work(Kind::Broadcast);
  napi_typedarray_type type;
  if (argc < 2 || !typedArray(env, argv[0], &w->data, &w->count, &type) || type != napi_uint8_array || napi_get_value_int32(env, argv[1], &w->root) != napi_ok) {
    delete w;
    return throwError(env, "internal: broadcast takes a Uint8Array and a root rank");
  }
  return Queue(env, w, argv[0]);
}

// allGather(Uint8Array): every rank's bytes, concatenated in rank order, with each rank's count.
napi_value AllGather(napi_env env, napi_callback_info info) {
  if (!requireReady(env)) return nullptr;
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Work *w = new Work(Kind::AllGather);
  napi_typedarray_type type;
  if (argc < 1 || !typedArray(env, argv[0], &w->data, &w->count, &type) || type != napi_uint8_array) {
    delete w;
    return throwError(env, "internal: allGather takes a Uint8Array");
  }
  if (w->count > static_cast<size_t>(INT_MAX)) {
    delete w;
    return throwError(env, "the all-gather's contribution exceeds MPI's 2 GiB limit for one call");
  }
  return Queue(env, w, argv[0]);
}

napi_value Barrier(napi_env env, napi_callback_info) {
  if (!requireReady(env)) return nullptr;
  return Queue(env, new Work(Kind::Barrier), nullptr);
}

// abort(code): ends every rank of the job (mpirun kills them); does not return when MPI is up.
napi_value Abort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int code = 1;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc >= 1) napi_get_value_int32(env, argv[0], &code);
  if (mpi.initialized && !mpi.finalized) mpi.abort(mpi.commWorld, code);
  return nullptr;
}

napi_value Finalize(napi_env env, napi_callback_info) {
  if (mpi.initialized && !mpi.finalized) {
    mpi.finalized = true;
    int code = mpi.finalize();
    if (code != kSuccess) return throwError(env, mpiError("MPI_Finalize", code));
  }
  return nullptr;
}

napi_value Initialise(napi_env env, napi_value exports) {
  const napi_property_descriptor properties[] = {
      {"load", nullptr, Load, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"allReduceSum", nullptr, AllReduceSum, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"broadcast", nullptr, Broadcast, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"allGather", nullptr, AllGather, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"barrier", nullptr, Barrier, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"abort", nullptr, Abort, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"finalize", nullptr, Finalize, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Initialise)
