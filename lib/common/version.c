/* SPDX-License-Identifier: MIT */
#include "siamese/siamese.h"

#define SM__STR2(x) #x
#define SM__STR(x)  SM__STR2(x)

SM_API int sm_version_number(void) { return SM_VERSION_NUMBER; }
SM_API const char *sm_version_string(void)
{
    return SM__STR(SM_VERSION_MAJOR) "." SM__STR(SM_VERSION_MINOR) "." SM__STR(SM_VERSION_PATCH);
}
SM_API int sm_abi_version(void) { return SM_ABI_MAJOR; }
