// Argument readers shared by the addon's functions (napi-args.c).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <node_api.h>

// A JS string as a malloc'd UTF-8 copy, its byte length in *len unless len is NULL; NULL when it is not
// a string or memory ran out.
char *sandboxd_get_string(napi_env env, napi_value v, size_t *len);

// A JS number that is an integer in [min, max]; false otherwise.
bool sandboxd_get_int(napi_env env, napi_value v, int64_t min, int64_t max, int64_t *out);
