# Shared by man/CMakeLists.txt (page links) and check-api.cmake (the
# man_covers_api test), so both agree on the names and on which page
# documents each one.

# Every function that include/imsg.h declares, sorted.  A prototype starts
# at the beginning of a line with its return type; continuation lines,
# struct members and comments are indented or start with "/*" or " *".
function(libimsg_api_functions header outvar)
	file(STRINGS "${header}" _lines)
	set(_names)
	foreach(_line IN LISTS _lines)
		if(NOT _line MATCHES "^[A-Za-z]")
			continue()
		endif()
		if(_line MATCHES "^(typedef|struct [a-z_]+ {|#)")
			continue()
		endif()
		if(_line MATCHES "[ \t*]((ibuf|ibufq|msgbuf|imsg|imsgbuf)_[a-z0-9_]+)\\(")
			list(APPEND _names "${CMAKE_MATCH_1}")
		endif()
	endforeach()
	list(REMOVE_DUPLICATES _names)
	list(SORT _names)
	set(${outvar} "${_names}" PARENT_SCOPE)
endfunction()

# The page that documents a function: the imsg layer in imsg_init.3,
# buffers, queues and msgbufs in ibuf_add.3.
function(libimsg_man_page_for name outvar)
	if(name MATCHES "^(imsg|imsgbuf)_")
		set(${outvar} imsg_init.3 PARENT_SCOPE)
	else()
		set(${outvar} ibuf_add.3 PARENT_SCOPE)
	endif()
endfunction()

set(LIBIMSG_MAN_PAGES imsg_init.3 ibuf_add.3)
