# man_covers_api: every function in include/imsg.h must be named (.Nm)
# on the page that its link points to, and have a prototype (.Fn or .Fo)
# in that page's SYNOPSIS; every .Nm must be a function that exists.
#
#   cmake -DHEADER=include/imsg.h -DMANDIR=man -P man/check-api.cmake
#
# With -DSELFTEST=ON the check is run on copies of the pages with one
# name removed from each, and passes only if the check notices, so the
# test cannot silently degrade into one that always succeeds.

cmake_minimum_required(VERSION 3.16)
include("${CMAKE_CURRENT_LIST_DIR}/api-names.cmake")

if(NOT HEADER OR NOT MANDIR)
	message(FATAL_ERROR "usage: cmake -DHEADER=imsg.h -DMANDIR=dir "
	    "[-DSELFTEST=ON] -P check-api.cmake")
endif()

# Collect the problems for the given page texts into outvar.
function(check_pages names imsg_text ibuf_text outvar)
	set(_errors)
	set(_nm)
	foreach(_page imsg_init.3 ibuf_add.3)
		if(_page STREQUAL "imsg_init.3")
			set(_text "${imsg_text}")
		else()
			set(_text "${ibuf_text}")
		endif()
		string(REGEX MATCHALL "\n\\.Nm [a-z0-9_]+" _m "\n${_text}")
		foreach(_x IN LISTS _m)
			string(REGEX REPLACE "^\n\\.Nm " "" _x "${_x}")
			list(APPEND _nm "${_x}")
			set(_nm_${_page}_${_x} 1)
		endforeach()
		# Only the SYNOPSIS counts for the prototypes.
		string(FIND "${_text}" "\n.Sh SYNOPSIS\n" _from)
		string(FIND "${_text}" "\n.Sh DESCRIPTION\n" _to)
		set(_syn "")
		if(_from GREATER -1 AND _to GREATER _from)
			math(EXPR _len "${_to} - ${_from}")
			string(SUBSTRING "${_text}" ${_from} ${_len} _syn)
		endif()
		string(REGEX MATCHALL "\n\\.(Fn|Fo) [a-z0-9_]+" _m "${_syn}")
		foreach(_x IN LISTS _m)
			string(REGEX REPLACE "^\n\\.(Fn|Fo) " "" _x "${_x}")
			set(_fn_${_page}_${_x} 1)
		endforeach()
	endforeach()

	foreach(_name IN LISTS names)
		libimsg_man_page_for(${_name} _page)
		if(NOT _nm_${_page}_${_name})
			list(APPEND _errors "${_name}: no .Nm in ${_page}")
		endif()
		if(NOT _fn_${_page}_${_name})
			list(APPEND _errors "${_name}: no .Fn/.Fo in the SYNOPSIS of ${_page}")
		endif()
	endforeach()
	foreach(_x IN LISTS _nm)
		if(NOT _x IN_LIST names)
			list(APPEND _errors "${_x}: .Nm for a function imsg.h lacks")
		endif()
	endforeach()
	set(${outvar} "${_errors}" PARENT_SCOPE)
endfunction()

libimsg_api_functions("${HEADER}" names)
list(LENGTH names count)
if(count EQUAL 0)
	message(FATAL_ERROR "found no functions in ${HEADER}: parser broken?")
endif()
file(READ "${MANDIR}/imsg_init.3" imsg_text)
file(READ "${MANDIR}/ibuf_add.3" ibuf_text)

if(SELFTEST)
	# Drop the first .Nm of each page in turn: each must be reported.
	foreach(which imsg ibuf)
		set(a "${imsg_text}")
		set(b "${ibuf_text}")
		if(which STREQUAL "imsg")
			string(REGEX MATCH "\n\\.Nm [a-z0-9_]+" victim "${a}")
			string(REPLACE "${victim}" "" a "${a}")
		else()
			string(REGEX MATCH "\n\\.Nm [a-z0-9_]+" victim "${b}")
			string(REPLACE "${victim}" "" b "${b}")
		endif()
		check_pages("${names}" "${a}" "${b}" errors)
		if(NOT errors)
			message(FATAL_ERROR
			    "self-test: removing '${victim}' went unnoticed")
		endif()
	endforeach()
	# And a name that the header does not declare must be reported.
	check_pages("${names}" "${imsg_text}\n.Nm imsg_no_such_function\n"
	    "${ibuf_text}" errors)
	if(NOT errors)
		message(FATAL_ERROR "self-test: a stale .Nm went unnoticed")
	endif()
	message(STATUS "self-test passed")
	return()
endif()

check_pages("${names}" "${imsg_text}" "${ibuf_text}" errors)
if(errors)
	list(LENGTH errors n)
	string(REPLACE ";" "\n  " errors "${errors}")
	message(FATAL_ERROR "${n} problem(s) in the man pages:\n  ${errors}")
endif()
message(STATUS "all ${count} functions of imsg.h are documented")
