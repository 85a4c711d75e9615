{
  "targets": [
    {
      "target_name": "sim_accel",
      "sources": ["native/simAccel.c", "hypervisor/core/xxh64.c"],
      "cflags": ["-std=c11", "-O3", "-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
