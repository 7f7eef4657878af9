{
  "targets": [
    {
      "target_name": "spawn",
      "sources": ["src/spawn.c", "src/inotify.c", "src/sendfile.c", "src/writefile.c", "src/napi-args.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Werror"],
      # Every symbol bound at load: the vfork child must never enter the lazy-binding resolver.
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
