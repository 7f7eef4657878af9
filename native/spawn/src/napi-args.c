// Argument readers shared by the addon's functions; see napi-args.h.
#include "napi-args.h"

#include <stdlib.h>

char *sandboxd_get_string(napi_env env, napi_value v, size_t *len) {
  size_t n;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return NULL;
  char *s = malloc(n + 1);
  if (s && napi_get_value_string_utf8(env, v, s, n + 1, &n) != napi_ok) {
    free(s);
    return NULL;
  }
  if (s && len) *len = n;
  return s;
}

bool sandboxd_get_int(napi_env env, napi_value v, int64_t min, int64_t max, int64_t *out) {
  napi_valuetype type;
  double d;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_number || napi_get_value_double(env, v, &d) != napi_ok) return false;
  if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}
