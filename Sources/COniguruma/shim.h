#include <oniguruma.h>

// The encoding and syntax handles are macros over the addresses of extern structs, and the error
// formatter is variadic: Swift imports neither, so they are handed out here.
static inline OnigEncoding sf_onig_encoding_utf32le(void) { return ONIG_ENCODING_UTF32_LE; }
static inline OnigSyntaxType *sf_onig_syntax_oniguruma(void) { return ONIG_SYNTAX_ONIGURUMA; }
static inline int sf_onig_error_text(OnigUChar *buffer, int code, OnigErrorInfo *info) {
    return onig_error_code_to_str(buffer, code, info);
}
