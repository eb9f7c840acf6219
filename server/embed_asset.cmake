# embed_asset.cmake - writes a C file defining `const unsigned char NAME[]` and NAME_len with the
# bytes of INPUT (cmake -DINPUT=f -DOUTPUT=f.c -DNAME=sym -P embed_asset.cmake).
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" nhex)
math(EXPR nbytes "${nhex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUTPUT} "/* generated from ${INPUT} - do not edit */\n#include <stddef.h>\n"
     "const unsigned char ${NAME}[] = {\n${body}0};\nconst size_t ${NAME}_len = ${nbytes};\n")
