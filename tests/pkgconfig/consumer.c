/* SPDX-License-Identifier: MIT */
/* A program that uses libsiamese the way a user's project does: the installed header, found and
 * linked through pkg-config (tests/test_install.sh builds it against an installed copy). */
#include <stdio.h>
#include <string.h>

#include <siamese/siamese.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        sm_status st_ = (call);                                                                    \
        if (st_ != SM_OK) {                                                                        \
            fprintf(stderr, "consumer: %s: %s: %s\n", #call, sm_status_name(st_),                  \
                    sm_last_error());                                                              \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(void)
{
    printf("libsiamese %s (header %d.%d.%d, ABI %d)\n", sm_version_string(), SM_VERSION_MAJOR,
           SM_VERSION_MINOR, SM_VERSION_PATCH, sm_abi_version());
    if (sm_version_number() != SM_VERSION_NUMBER || sm_abi_version() != SM_ABI_MAJOR) {
        fprintf(stderr, "consumer: header and library versions differ\n");
        return 1;
    }

    sm_backend *backend = NULL;
    sm_arch *arch = NULL;
    sm_subnet *subnet = NULL;
    sm_head *head = NULL;
    CHECK(sm_backend_create(SM_BACKEND_CPU, &backend));
    CHECK(sm_backend_set_threads(backend, 1));
    CHECK(sm_arch_from_string("1x12x12:conv4k3,relu,pool2,flatten,fc8", &arch));
    CHECK(sm_subnet_create(backend, arch, 7, &subnet));
    CHECK(sm_head_create(backend, sm_subnet_feature_dim(subnet), 8, &head));

    float a[12 * 12], b[12 * 12], score = -1.0f;
    for (int i = 0; i < 12 * 12; i++) {
        a[i] = (float)(i % 7) / 6.0f;
        b[i] = 1.0f - a[i];
    }
    CHECK(sm_predict_pair(subnet, head, a, b, &score));
    printf("backend %s, %zu parameters, score %.6f\n", sm_backend_name(backend),
           sm_subnet_num_params(subnet), (double)score);

    sm_head_destroy(head);
    sm_subnet_destroy(subnet);
    sm_arch_destroy(arch);
    sm_backend_destroy(backend);
    if (!(score > 0.0f && score < 1.0f)) {
        fprintf(stderr, "consumer: score %f is not in (0, 1)\n", (double)score);
        return 1;
    }
    return 0;
}
