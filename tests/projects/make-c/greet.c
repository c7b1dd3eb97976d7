#include <endian.h>
#include <stdio.h>

int main(void) {
    printf("greetings from a %s-endian %d-bit make build\n",
           __BYTE_ORDER == __BIG_ENDIAN ? "big" : "little", (int)(sizeof(void *) * 8));
    return 0;
}
