# Run by "cmake --build BUILD --target dist": the source tarball
# libimsg-VERSION.tar.gz of the committed HEAD, made with git archive, so
# it holds exactly the tracked files and nothing from a build directory.
# Variables: SOURCE_DIR, OUT (the tarball), PREFIX (its top directory),
# GIT.
if(NOT GIT)
	message(FATAL_ERROR "dist: git not found; it makes the tarball")
endif()
execute_process(COMMAND ${GIT} -C ${SOURCE_DIR} rev-parse --verify -q HEAD
	RESULT_VARIABLE _rc OUTPUT_VARIABLE _head OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _rc EQUAL 0)
	message(FATAL_ERROR "dist: ${SOURCE_DIR} is not a git checkout with "
	    "a commit; make the tarball from one")
endif()
# Changes that are not committed are not in the tarball: say so.
execute_process(COMMAND ${GIT} -C ${SOURCE_DIR} status --porcelain
	--untracked-files=no OUTPUT_VARIABLE _dirty)
if(_dirty)
	message(WARNING "dist: the work tree has uncommitted changes; the "
	    "tarball holds HEAD (${_head}) without them")
endif()
# git's own gzip leaves out the time stamp, so the same commit gives the
# same bytes.
execute_process(COMMAND ${GIT} -C ${SOURCE_DIR} archive --format=tar.gz
	--prefix=${PREFIX}/ -o ${OUT} HEAD RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
	message(FATAL_ERROR "dist: git archive failed")
endif()
message(STATUS "dist: wrote ${OUT} from ${_head}")
