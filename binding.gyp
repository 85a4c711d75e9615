{
  "targets": [
    {
      "target_name": "sim_accel",
      "sources": ["native/simAccel.c", "native/pageStreamIo.c", "hypervisor/core/xxh64.c"],
      "libraries": ["-lpthread"],
      "cflags": ["-std=c11", "-O3", "-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "baremig_hosted",
      "sources": [
        "hypervisor/core/bm_lib.c", "hypervisor/core/sha256.c", "hypervisor/core/xxh64.c", "hypervisor/core/msgpack.c",
        "hypervisor/core/link.c", "hypervisor/core/shadow.c", "hypervisor/core/agent.c",
        "hypervisor/hosted/net.c", "hypervisor/hosted/napi_hal.c"
      ],
      "cflags": ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
