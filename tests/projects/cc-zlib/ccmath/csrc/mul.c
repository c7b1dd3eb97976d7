#include <stdint.h>

/* The product, and the byte order the C compiler targets. */
int32_t ccmath_mul(int32_t a, int32_t b) { return a * b; }

int ccmath_big_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 0;
}
