#include <stdio.h>
#include <string.h>

int main(void) {
    char text[32];
    snprintf(text, sizeof text, "%d squared is %d", 7, 7 * 7);
    printf("%s (cmake, %zu-bit, %zu characters)\n", text, sizeof(void *) * 8, strlen(text));
    return 0;
}
