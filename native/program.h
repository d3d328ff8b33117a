// Step programs (program.cc): compile once, run one decode step per call.
#pragma once

#include <node_api.h>

namespace echoatt {

// Operand words of each opcode (tests hold them against src/backend/program.ts).
int program_words(int op);
int program_ops();

napi_value CompileProgram(napi_env env, napi_callback_info info);
napi_value RunProgram(napi_env env, napi_callback_info info);
napi_value ProgramProfile(napi_env env, napi_callback_info info);

}  // namespace echoatt
