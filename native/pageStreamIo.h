/* The page stream's native data plane (pageStreamIo.c), registered by simAccel.c. */
#ifndef BAREMIG_PAGE_STREAM_IO_H
#define BAREMIG_PAGE_STREAM_IO_H
#include <node_api.h>

napi_value bm_send_pages(napi_env env, napi_callback_info info);
napi_value bm_receive_pages(napi_env env, napi_callback_info info);
napi_value bm_cancel_stream(napi_env env, napi_callback_info info);

#endif
