{
  "targets": [
    {
      "target_name": "sim_accel",
      "sources": ["native/simAccel.c", "native/pageStreamIo.c", "hypervisor/core/xxh64.c"],
      "libraries": ["-lpthread"],
      "cflags": ["-std=c11", "-O3", "-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
