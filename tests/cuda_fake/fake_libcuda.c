/* SPDX-License-Identifier: MIT */
/* An empty libcuda.so.1 for the fake cuda module (tests/cuda_fake/fake_vendor.c): the module's
 * probe dlopens the driver library before anything else, and finds this one through the fake
 * module's RUNPATH. Nothing calls into it. */
int sm_fake_libcuda_marker;
int sm_fake_libcuda_marker = 1;
