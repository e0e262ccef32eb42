/* SPDX-License-Identifier: MIT */
/* sm_comm_open: communicators from run-time modules (libsiamese-comm-mpi.so,
 * libsiamese-comm-nccl.so), found where the backend modules are (lib/backend/backend.c). The core
 * never links MPI or NCCL: a module that is missing or whose library is missing is
 * SM_ERR_BACKEND_UNAVAILABLE, and the program goes on without it. Module handles stay open for the
 * life of the process (unloading an MPI or CUDA runtime is not safe). */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm_impl.h"
#include "common/module_path.h"
#include "common/error.h"

static sm_comm_result bootstrap_bcast(void *ctx, void *buf, size_t bytes, int root)
{
    return sm__comm_broadcast(ctx, buf, bytes, root, "the NCCL bootstrap") == SM_OK
               ? SM_COMM_OK
               : SM_COMM_FAILED;
}

SM_API sm_status sm_comm_open(const char *name, sm_comm *bootstrap, int device, sm_comm **out)
{
    SM_CHECK_ARG(name && out, "sm_comm_open: NULL argument");
    const int is_mpi = strcmp(name, "mpi") == 0, is_nccl = strcmp(name, "nccl") == 0;
    SM_CHECK_ARG(is_mpi || is_nccl,
                 "sm_comm_open: unknown communicator module '%.40s' "
                 "(\"mpi\" or \"nccl\")",
                 name);
    SM_CHECK_ARG(!is_nccl || bootstrap,
                 "sm_comm_open: \"nccl\" needs a bootstrap communicator "
                 "(for example sm_comm_open(\"mpi\", ...)) to share its unique id");
    char file[64], path[4096];
    snprintf(file, sizeof file, "libsiamese-comm-%s.so", name);
    sm__module_path(file, path, sizeof path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        if (access(path, F_OK) != 0)
            return sm__fail(SM_ERR_BACKEND_UNAVAILABLE,
                            "no comm-%s module at '%s' (this build "
                            "may not include it: meson option -Dcomm-%s=enabled; or set "
                            "SIAMESE_BACKEND_DIR)",
                            name, path, name);
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE,
                        "comm-%s module '%s' could not be loaded: "
                        "%s",
                        name, path, why ? why : "unknown dlopen error");
    }
    sm_comm_module_entry_fn entry;
    *(void **)&entry = dlsym(h, "sm_comm_module_entry");
    if (!entry) {
        dlclose(h);
        return sm__fail(SM_ERR_BACKEND_UNAVAILABLE, "'%s' has no sm_comm_module_entry", path);
    }
    char err[512] = "";
    int serialized = 0;
    sm_comm_module_args args = {
        .abi = SM_COMM_MODULE_ABI,
        .device = device,
        .bootstrap_bcast = bootstrap ? bootstrap_bcast : NULL,
        .bootstrap_ctx = bootstrap,
        .bootstrap_rank = bootstrap ? sm_comm_rank(bootstrap) : 0,
        .bootstrap_size = bootstrap ? sm_comm_size(bootstrap) : 1,
        .err = err,
        .err_cap = sizeof err,
        .serialized = &serialized,
    };
    sm_comm_ops ops;
    void *user = NULL;
    memset(&ops, 0, sizeof ops);
    if (entry(&args, &ops, &user) != 0)
        return sm__fail(SM_ERR_COMM, "comm-%s: %s", name, err[0] ? err : "setup failed");
    sm_status st = sm_comm_create(&ops, user, out);
    if (st != SM_OK && ops.destroy) ops.destroy(user);
    if (st == SM_OK) atomic_store(&(*out)->serialized, serialized == 1);
    return st;
}
