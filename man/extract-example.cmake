# Write the complete program shown in a page's EXAMPLES section (the
# literal display that starts with #include) to a C file, undoing the
# mdoc escapes, so the build can prove that the example compiles.
#
#   cmake -DPAGE=man/imsg_init.3 -DOUT=example.c -P man/extract-example.cmake

cmake_minimum_required(VERSION 3.16)

if(NOT PAGE OR NOT OUT)
	message(FATAL_ERROR "usage: cmake -DPAGE=page -DOUT=file.c "
	    "-P extract-example.cmake")
endif()

# Work on the whole text: CMake lists would mangle the semicolons.
file(READ "${PAGE}" text)
string(REGEX MATCH "\n\\.Bd -literal[^\n]*\n#include" start "${text}")
if(NOT start)
	message(FATAL_ERROR "${PAGE}: no example program found")
endif()
string(FIND "${text}" "${start}" pos)
string(LENGTH "${start}" len)
math(EXPR pos "${pos} + ${len} - 8")	# keep the "#include"
string(SUBSTRING "${text}" ${pos} -1 program)
string(FIND "${program}" "\n.Ed\n" end)
if(end EQUAL -1)
	message(FATAL_ERROR "${PAGE}: example program not terminated")
endif()
math(EXPR end "${end} + 1")
string(SUBSTRING "${program}" 0 ${end} program)

# The mdoc escapes the examples use: \e is a backslash, \& is nothing,
# \- is a minus sign.  \e goes last, so "\e-" stays "\-".
string(REPLACE "\\&" "" program "${program}")
string(REPLACE "\\-" "-" program "${program}")
string(REPLACE "\\e" "\\" program "${program}")

# Rewrite only when changed, so the example is not rebuilt needlessly.
if(EXISTS "${OUT}")
	file(READ "${OUT}" old)
	if(old STREQUAL program)
		return()
	endif()
endif()
file(WRITE "${OUT}" "${program}")
