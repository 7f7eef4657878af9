// Directory watching on inotify (inotify.c): inotifyOpen, inotifyAdd, inotifyRemove, inotifyClose.
#pragma once
#include <node_api.h>

napi_status inotify_exports(napi_env env, napi_value exports);
